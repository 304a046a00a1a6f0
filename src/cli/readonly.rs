//! The commands that only read (`tickets`, `stats`, `explain`, `outbox`,
//! `backup`): they load the settings without needing the daemon's secrets
//! and open the database without migrating it. A database whose schema is
//! older than this build is left as it is, and the command says what to
//! do: migrating it under an older daemon still running would break that
//! daemon.

use std::path::Path;

use crate::settings::{self, Settings};
use crate::store::Store;
use crate::store::schema::Schema;

use super::{Failure, fail};

/// The settings, with secrets that cannot be read replaced (see
/// [`settings::load_without_secrets`]).
pub fn load_settings(path: &Path) -> Result<Settings, Failure> {
    settings::load_without_secrets(path)
        .map_err(|e| fail(2, anyhow::anyhow!("invalid settings:\n{e}")))
}

/// The settings for `explain`, which needs `helpdesk.secret` to verify
/// reply tokens: read with its secrets when it can be, else without them
/// (and said so when the token key is what is missing).
pub fn load_settings_for_explain(path: &Path) -> Result<Settings, Failure> {
    match settings::load(path) {
        Ok(s) => Ok(s),
        Err(strict) => {
            let s = load_settings(path)?;
            // only the token key matters here; the passwords do not
            if strict
                .problems
                .iter()
                .any(|p| p.key.starts_with("helpdesk.secret"))
            {
                eprintln!(
                    "note: the reply-token key cannot be read here, so reply tokens are not verified in this explanation:\n{strict}"
                );
            }
            Ok(s)
        }
    }
}

/// The database, not migrated: a new one (no tables) is set up, as there
/// is nothing in it that an older daemon could depend on; one with an
/// older schema is refused with what to do.
pub async fn open_store(s: &Settings) -> Result<Store, Failure> {
    let store = Store::connect(&s.database.url).await?;
    match store.schema().await? {
        Schema::Current => Ok(store),
        Schema::Newer { unknown } => {
            eprintln!(
                "warning: the database was migrated by a newer Guichet (migrations {} unknown to this one): what is shown may be incomplete",
                list(&unknown)
            );
            Ok(store)
        }
        Schema::Empty => {
            store.migrate().await?;
            Ok(store)
        }
        Schema::Older { missing } => {
            store.close().await;
            Err(fail(
                1,
                anyhow::anyhow!(
                    "the database's schema is older than this Guichet (migrations {} not applied): this command reads only and changed nothing. \
                     Stop the running daemon, then `guichet migrate` (or start the new daemon, which migrates); see the upgrade note in the README",
                    list(&missing)
                ),
            ))
        }
    }
}

fn list(versions: &[i64]) -> String {
    versions
        .iter()
        .map(|v| format!("{v:04}"))
        .collect::<Vec<_>>()
        .join(", ")
}
