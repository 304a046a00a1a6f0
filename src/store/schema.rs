//! Where the database's schema stands against this build's migrations,
//! without changing it: the read-only commands (`tickets`, `stats`,
//! `explain`, `outbox`, `backup`) open the store this way, so that an
//! admin's command never migrates a database under an older daemon that
//! is still running.

use anyhow::{Context, Result};

use super::Store;

/// The schema of a database, against the migrations this build carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    /// Every migration this build knows is applied (and no other).
    Current,
    /// No migration applied: a new, empty database.
    Empty,
    /// Migrations this build carries are not applied yet.
    Older { missing: Vec<i64> },
    /// The database carries migrations this build does not know (a newer
    /// Guichet migrated it).
    Newer { unknown: Vec<i64> },
}

impl Store {
    /// The applied migrations against this build's (see [`Schema`]).
    /// Reads only.
    pub async fn schema(&self) -> Result<Schema> {
        let known: Vec<i64> = match self {
            Store::Sqlite(_) => sqlx::migrate!("migrations/sqlite")
                .iter()
                .map(|m| m.version)
                .collect(),
            Store::Postgres(_) => sqlx::migrate!("migrations/postgres")
                .iter()
                .map(|m| m.version)
                .collect(),
        };
        // a migration under way (another process's) is waited for
        let _lock = match self {
            Store::Sqlite(p) => {
                let db = p.connect_options().get_filename().to_path_buf();
                match super::on_disk(&db) {
                    Some(db) => Some(super::lock_beside(db).await?),
                    None => None,
                }
            }
            Store::Postgres(_) => None,
        };
        let table = match self {
            Store::Sqlite(p) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(p)
                .await?
                    > 0
            }
            Store::Postgres(p) => {
                sqlx::query_scalar::<_, bool>(
                    "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
                )
                .fetch_one(p)
                .await?
            }
        };
        if !table {
            return Ok(Schema::Empty);
        }
        const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        let applied: Vec<i64> = match self {
            Store::Sqlite(p) => sqlx::query_scalar(APPLIED).fetch_all(p).await,
            Store::Postgres(p) => sqlx::query_scalar(APPLIED).fetch_all(p).await,
        }
        .context("cannot read the database's migrations")?;
        Ok(compare(&known, &applied))
    }
}

/// The schema, from the migrations known and those applied.
pub fn compare(known: &[i64], applied: &[i64]) -> Schema {
    if applied.is_empty() {
        return Schema::Empty;
    }
    let unknown: Vec<i64> = applied
        .iter()
        .filter(|v| !known.contains(v))
        .copied()
        .collect();
    if !unknown.is_empty() {
        return Schema::Newer { unknown };
    }
    let missing: Vec<i64> = known
        .iter()
        .filter(|v| !applied.contains(v))
        .copied()
        .collect();
    if missing.is_empty() {
        Schema::Current
    } else {
        Schema::Older { missing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas() {
        assert_eq!(compare(&[1, 2, 3], &[1, 2, 3]), Schema::Current);
        assert_eq!(compare(&[1, 2, 3], &[]), Schema::Empty);
        assert_eq!(
            compare(&[1, 2, 3, 5], &[1, 2]),
            Schema::Older {
                missing: vec![3, 5]
            }
        );
        assert_eq!(
            compare(&[1, 2], &[1, 2, 7]),
            Schema::Newer { unknown: vec![7] }
        );
    }
}
