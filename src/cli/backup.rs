//! `guichet backup DIR` and `guichet restore DIR`.
//!
//! SQLite: `VACUUM INTO` writes a consistent copy of the live database
//! (one read transaction: every ticket committed before it began, none
//! half-written) while the daemon goes on; then the attachment store is
//! copied (files are written before the commit that names them, so every
//! file the copy names is there). PostgreSQL: the attachment store is
//! copied and the `pg_dump` command to run is printed. Secrets are not
//! copied: `backup` lists the files to keep safe yourself.
//!
//! `restore DIR` puts a SQLite copy back (the daemon stopped), or prints
//! the `pg_restore` command; the attachments are copied back either way.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;
use serde_json::json;

use crate::adapters::file_store::temp_files::is_temp_name;
use crate::settings::{SecretSource, Settings};
use crate::store::Store;

use super::Failure;

const DB_FILE: &str = "guichet.db";
const FILES_DIR: &str = "attachments";
const MANIFEST: &str = "MANIFEST.json";
const PG_DUMP: &str = "guichet.pgdump";

pub async fn backup(s: &Settings, store: &Store, dir: &Path) -> Result<(), Failure> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(super::fail(
            1,
            anyhow::anyhow!(
                "{} exists and is not empty: a backup goes into a new directory",
                dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let started = Utc::now();
    let (database, pg_dump) = match store {
        Store::Sqlite(pool) => {
            let target = std::path::absolute(dir.join(DB_FILE))?;
            let target = target
                .to_str()
                .context("the backup path is not UTF-8")?
                .to_string();
            sqlx::query("VACUUM INTO $1")
                .bind(&target)
                .execute(pool)
                .await
                .context("VACUUM INTO (the consistent copy of the database) failed")?;
            (json!({"backend": "sqlite", "file": DB_FILE}), None)
        }
        Store::Postgres(_) => {
            let command = pg_dump_command(&s.database.url, &dir.join(PG_DUMP));
            (
                json!({"backend": "postgres", "file": PG_DUMP, "dump_with": command}),
                Some(command),
            )
        }
    };
    // the tickets in the copy (SQLite), or in the database now
    let tickets = match store {
        Store::Sqlite(_) => {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.join(DB_FILE))
                .read_only(true);
            let copy = sqlx::SqlitePool::connect_with(opts)
                .await
                .context("cannot open the copy")?;
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets")
                .fetch_one(&copy)
                .await
                .context("cannot read the copy")?;
            copy.close().await;
            n
        }
        Store::Postgres(_) => store.count(crate::store::CountedTable::Tickets).await?,
    };
    let files = copy_tree(&s.attachments.storage_dir, &dir.join(FILES_DIR))
        .with_context(|| format!("cannot copy {}", s.attachments.storage_dir.display()))?;
    let manifest = json!({
        "guichet": env!("CARGO_PKG_VERSION"),
        "started_at": started,
        "finished_at": Utc::now(),
        "database": database,
        "tickets": tickets,
        "attachment_files": files,
    });
    std::fs::write(
        dir.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    println!(
        "backup in {}: {} tickets, {files} attachment files",
        dir.display(),
        if pg_dump.is_some() {
            "database NOT copied (PostgreSQL, see below)".to_string()
        } else {
            format!("database copied ({DB_FILE})")
        } + &format!(", {tickets}")
    );
    if let Some(command) = pg_dump {
        println!(
            "PostgreSQL: dump the database yourself (consistent while the daemon runs):\n  {command}"
        );
    }
    let secrets = secret_files(s);
    if !secrets.is_empty() {
        println!("not copied, keep them safe yourself (secrets):");
        for f in secrets {
            println!("  {}", f.display());
        }
    }
    Ok(())
}

pub async fn restore(s: &Settings, dir: &Path, force: bool) -> Result<(), Failure> {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(MANIFEST))
            .with_context(|| format!("{} is not a Guichet backup", dir.display()))?,
    )
    .context("MANIFEST.json is not JSON")?;
    let url = &s.database.url;
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    match (manifest["database"]["backend"].as_str(), postgres) {
        (Some("sqlite"), false) => {
            let opts = Store::sqlite_options(url)?;
            let target = opts.get_filename().to_path_buf();
            if target.exists() && !force {
                return Err(super::fail(
                    1,
                    anyhow::anyhow!(
                        "{} exists: stop the daemon, then `guichet restore --force {}` replaces it",
                        target.display(),
                        dir.display()
                    ),
                ));
            }
            replace_database(&dir.join(DB_FILE), &target)?;
            println!("database restored to {}", target.display());
        }
        (Some("postgres"), true) => {
            println!(
                "PostgreSQL: restore the dump yourself into an empty database, then start the daemon:\n  {}",
                pg_restore_command(url, &dir.join(PG_DUMP))
            );
        }
        (backend, _) => {
            return Err(anyhow::anyhow!(
                "the backup holds a {} database and the settings name a {} one",
                backend.unwrap_or("unknown"),
                if postgres { "postgres" } else { "sqlite" }
            )
            .into());
        }
    }
    let files = copy_tree(&dir.join(FILES_DIR), &s.attachments.storage_dir)?;
    println!(
        "{files} attachment files copied to {}",
        s.attachments.storage_dir.display()
    );
    Ok(())
}

/// Copies `backup` over `target` through a temporary file and a rename,
/// dropping the old database's WAL and shared-memory files (they belong
/// to the replaced database and would corrupt the restored one).
fn replace_database(backup: &Path, target: &Path) -> anyhow::Result<()> {
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::adapters::ownership::create_dir_all_as_owner(parent)?;
    let temp = target.with_extension("restoring");
    std::fs::copy(backup, &temp)
        .with_context(|| format!("cannot copy {} to {}", backup.display(), temp.display()))?;
    std::fs::File::open(&temp)?.sync_all()?;
    for suffix in ["-wal", "-shm"] {
        let mut side = target.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(side)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    std::fs::rename(&temp, target)?;
    // restored by root: the service's database, as its folder is
    crate::adapters::ownership::give_to_owner_of(parent, &[target])?;
    Ok(())
}

/// Copies the regular files under `from` to `to` (same relative paths),
/// skipping the store's temporary files and files already there with the
/// same size (content-addressed: same name, same content). Returns how
/// many files the tree holds.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    if !from.exists() {
        return Ok(0);
    }
    crate::adapters::ownership::create_dir_all_as_owner(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            n += copy_tree(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() && !is_temp_name(&name.to_string_lossy()) {
            let target = to.join(&name);
            let same = std::fs::metadata(&target)
                .is_ok_and(|m| m.len() == entry.metadata().map(|e| e.len()).unwrap_or(u64::MAX));
            if !same {
                std::fs::copy(entry.path(), &target)?;
                crate::adapters::ownership::give_to_owner_of(to, &[&target])?;
            }
            n += 1;
        }
    }
    Ok(n)
}

/// The `*_file` secrets the settings read (the reply-token key first).
fn secret_files(s: &Settings) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut add = |source: &SecretSource| {
        if let SecretSource::File(p) = source
            && !out.contains(p)
        {
            out.push(p.clone());
        }
    };
    add(&s.helpdesk.secret_source);
    add(&s.imap.password_source);
    if let Some(source) = &s.smtp.password_source {
        add(source);
    }
    for w in &s.webhooks {
        if let Some(source) = &w.secret_source {
            add(source);
        }
    }
    out
}

/// The URL without its password (given through `PGPASSWORD` or
/// `~/.pgpass` instead, never on a command line).
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

fn pg_dump_command(url: &str, file: &Path) -> String {
    format!(
        "pg_dump --format=custom --file='{}' '{}'",
        file.display(),
        without_password(url)
    )
}

fn pg_restore_command(url: &str, file: &Path) -> String {
    format!(
        "pg_restore --no-owner --dbname='{}' '{}'",
        without_password(url),
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_commands_never_carry_the_password() {
        let c = pg_dump_command(
            "postgres://guichet:s3cret@db.example.com:5432/helpdesk",
            Path::new("/backups/x/guichet.pgdump"),
        );
        assert_eq!(
            c,
            "pg_dump --format=custom --file='/backups/x/guichet.pgdump' 'postgres://guichet@db.example.com:5432/helpdesk'"
        );
        assert!(!pg_restore_command("postgres://u:pw@h/d", Path::new("f")).contains("pw"));
    }

    #[test]
    fn the_tree_is_copied_without_temporary_files() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join("ab/cd")).unwrap();
        std::fs::write(from.path().join("ab/cd/abcd1"), b"one").unwrap();
        let temp = crate::adapters::file_store::temp_files::temp_name(&"ab".repeat(32), 7);
        std::fs::write(from.path().join("ab/cd").join(&temp), b"half").unwrap();
        assert_eq!(copy_tree(from.path(), &to.path().join("x")).unwrap(), 1);
        assert_eq!(
            std::fs::read(to.path().join("x/ab/cd/abcd1")).unwrap(),
            b"one"
        );
        assert!(!to.path().join("x/ab/cd").join(temp).exists());
        assert_eq!(copy_tree(&from.path().join("none"), to.path()).unwrap(), 0);
    }
}
