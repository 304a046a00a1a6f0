//! The database: tickets, messages, attachments' verdicts, events and the
//! two outboxes (mail and webhooks), in SQLite (the embedded default) or
//! PostgreSQL (several daemons).
//!
//! One SQL text serves both backends: placeholders are `$1…` (SQLite takes
//! them too), ids come back with `RETURNING`, and times are chrono values
//! (RFC 3339 text in SQLite, `timestamptz` in PostgreSQL). The two
//! `match` arms of [`on_db!`] type-check the same body once per backend, so
//! nothing is written twice. Rules never see this module: workers load
//! plain rows, call the rules, and write the outcome in one transaction.
//!
//! This file holds the connection and the writes of tickets and messages
//! ([`Tx`]); each other part has its module: `reads` (tickets and what they
//! hold, for the CLI and the workers), `outbox` (outgoing mail),
//! `webhook_outbox`, `mailbox` (what is stored, the checkpoint, fetch
//! claims and failures), `claims` (who holds a lease), `customers`,
//! `identities`, `retention`, `queues` (what is waiting).

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Postgres, Sqlite, Transaction};

mod blob;
pub mod claims;
pub mod fault;
mod rows;
pub mod schema;
pub use fault::{Fault, fault_of};
pub use rows::*;

#[derive(Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction: everything one decision changes, committed at once.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs the same body against whichever backend `$store` is: `$c` is the
/// pool (for [`Store`]) or the connection (for [`Tx`]).
macro_rules! on_db {
    (pool $store:expr, $c:ident => $body:expr) => {
        match $store {
            Store::Sqlite($c) => $body,
            Store::Postgres($c) => $body,
        }
    };
    (tx $tx:expr, $c:ident => $body:expr) => {
        match $tx {
            Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

// after `on_db!`, which it uses
mod customers;
mod identities;
mod mailbox;
mod outbox;
pub mod probe;
pub mod queues;
mod reads;
mod retention;
mod webhook_outbox;
pub use customers::Erased;
pub use identities::Merged;
pub use retention::{
    ArchivedAttachmentRow, ArchivedDeliveryRow, ArchivedTicketRow, Reclaimed, Removed,
};

impl Store {
    /// Opens (and for SQLite creates) the database. Does not migrate.
    pub async fn connect(url: &str) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .context("bad PostgreSQL URL")?
                // the server's NOTICEs ("relation _sqlx_migrations already
                // exists, skipping" at every start) are not news to an admin
                .options([("client_min_messages", "warning")])
                // a statement that waits a second behind another daemon's
                // transaction is how several daemons share one database,
                // not a fault to warn about (the default is a WARN line)
                .log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1));
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .after_release(|c, _| Box::pin(postgres_clean(c)))
                .connect_with(opts)
                .await
                .context("cannot connect to PostgreSQL")?;
            return Ok(Store::Postgres(pool));
        }
        Store::connect_sqlite(Store::sqlite_options(url)?).await
    }

    /// The connection options [`Store::connect`] opens a SQLite `url`
    /// with (creating its directory): tests add pragmas to them.
    pub fn sqlite_options(url: &str) -> Result<SqliteConnectOptions> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .with_context(|| {
                format!("unsupported database url `{url}`: use sqlite://PATH or postgres://…")
            })?;
        if path != ":memory:"
            && let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("cannot create the database directory {}", dir.display())
            })?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .with_context(|| format!("bad SQLite path `{path}`"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit survives a crash of the process; only a
            // power cut may lose the last commits, and IMAP still has them.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .pragma("wal_autocheckpoint", "16384")
            .pragma("cache_size", "-16384")
            // deleted content is overwritten, not left in free pages
            // (erasure and retention, issue 24)
            .pragma("secure_delete", "ON")
            .foreign_keys(true)
            // waiting behind an ingest transaction is normal (see above)
            .log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1));
        Ok(opts)
    }

    /// Opens a SQLite database with these options (see
    /// [`Store::sqlite_options`]).
    pub async fn connect_sqlite(opts: SqliteConnectOptions) -> Result<Store> {
        let path = opts.get_filename().to_string_lossy().into_owned();
        // ONE connection: SQLite has one writer anyway, and with several
        // connections the ingest transaction and the outbox's updates
        // fought for the lock in SQLite's busy handler (sleeps of up to
        // 100 ms) and each write emptied the others' page caches. Queued
        // on one connection, they simply take turns. Never wait for the
        // pool while holding a `Tx`: that would wait for itself.
        // Two processes opening a new file at once (the daemon and an
        // admin's `tickets list`) both switch it to WAL, which needs the
        // file alone: one of them got "database is locked" whatever the
        // busy timeout. The same lock file as the migrations serialises
        // the opening; it is held for milliseconds.
        let on_disk = on_disk(Path::new(&path));
        let _lock = match on_disk {
            Some(db) => Some(lock_beside(db).await?),
            None => None,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .after_release(|c, _| Box::pin(sqlite_clean(c)))
            .connect_with(opts)
            .await
            .with_context(|| format!("cannot open the SQLite database {path}"))?;
        if let Some(db) = on_disk {
            // made by root (an admin's command): the service's, as its folder
            let (wal, shm) = (beside(db, "-wal"), beside(db, "-shm"));
            crate::adapters::ownership::give_to_owner_of(
                folder_of(db),
                &[db, Path::new(&wal), Path::new(&shm)],
            )?;
        }
        Ok(Store::Sqlite(pool))
    }

    /// Applies the migrations. Several processes may start at once (the
    /// daemon and a `tickets list`): PostgreSQL's migrator takes an advisory
    /// lock itself; for SQLite, whose migrator does not lock, a lock file
    /// beside the database serialises them.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(p) => {
                let db = p.connect_options().get_filename().to_path_buf();
                let _lock = match on_disk(&db) {
                    Some(db) => Some(lock_beside(db).await?),
                    None => None,
                };
                // a new database gives free pages back by incremental
                // vacuum (the mode is set before the first table, or by a
                // VACUUM: an older database is converted by
                // Store::reclaim_space the first time something goes).
                // Only then: setting it writes, and a full disk must not
                // stop an admin from reading the database.
                let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master")
                    .fetch_one(p)
                    .await?;
                if tables == 0 {
                    // in WAL mode the file is written already: the mode
                    // takes effect with a VACUUM (instant on no tables)
                    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
                        .execute(p)
                        .await?;
                    sqlx::query("VACUUM").execute(p).await?;
                }
                sqlx::migrate!("migrations/sqlite").run(p).await
            }
            Store::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await,
        }
        .context("cannot apply the database migrations")
    }

    /// Migrations this binary knows that the database has not applied
    /// (`guichet doctor`; nothing is changed).
    pub async fn pending_migrations(&self) -> Result<usize> {
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
        // no table yet: nothing applied
        let applied: Vec<i64> = on_db!(pool self, p => {
            sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(p)
                .await
        })
        .unwrap_or_default();
        Ok(known.iter().filter(|v| !applied.contains(v)).count())
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether several daemons may share this store (PostgreSQL); a
    /// SQLite file has one daemon.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// A write transaction. SQLite takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a read-then-write never fails half-way.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Store::Sqlite(p) => Tx::Sqlite(
                p.begin_with("BEGIN IMMEDIATE")
                    .await
                    .context("cannot begin a transaction")?,
            ),
            Store::Postgres(p) => {
                Tx::Postgres(p.begin().await.context("cannot begin a transaction")?)
            }
        })
    }

    pub async fn close(&self) {
        on_db!(pool self, p => p.close().await)
    }

    /// Claims left by a daemon that died (kill -9, power loss) are due
    /// again at once, instead of when their lease ends. SQLite: one file
    /// has one daemon, so a claim at its start is a dead one. PostgreSQL,
    /// shared by several daemons: those of dead daemons of this host (see
    /// [`claims`]); other hosts' wait for their leases. Returns how many.
    pub async fn release_dead_claims(&self) -> Result<u64> {
        let p = match self {
            Store::Sqlite(p) => p,
            Store::Postgres(p) => return claims::release_dead_on_this_host(p).await,
        };
        let mail = sqlx::query(
            "UPDATE outbox_mail SET locked_until = NULL \
             WHERE locked_until IS NOT NULL AND sent_at IS NULL AND failed_at IS NULL",
        )
        .execute(p)
        .await?
        .rows_affected();
        let hooks = sqlx::query(
            "UPDATE webhook_outbox SET locked_until = NULL \
             WHERE locked_until IS NOT NULL AND delivered_at IS NULL AND dead_at IS NULL",
        )
        .execute(p)
        .await?
        .rows_affected();
        Ok(mail + hooks)
    }

    /// The OAuth2 refresh token stored for this account, if any.
    pub async fn oauth_refresh_token(&self, account: &str) -> Result<Option<String>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_scalar::<_, String>(
                "SELECT refresh_token FROM oauth_tokens WHERE account = $1",
            )
            .bind(account)
            .fetch_optional(p)
            .await
        })?)
    }

    /// Stores (or replaces) the account's OAuth2 refresh token.
    pub async fn save_oauth_refresh_token(
        &self,
        account: &str,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_db!(pool self, p => {
            sqlx::query(
                "INSERT INTO oauth_tokens (account, refresh_token, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (account) DO UPDATE SET refresh_token = excluded.refresh_token, updated_at = excluded.updated_at",
            )
            .bind(account)
            .bind(refresh_token)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }
}

/// Text from mail as the database keeps it. PostgreSQL's TEXT cannot
/// hold the NUL character, which decoded mail can carry (`=00` in a
/// quoted-printable body or encoded-word subject, a base64 part): it is
/// replaced by U+FFFD on both backends, so that they store the same.
fn db_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Whether `error` is the database refusing a transaction because of
/// another one running at the same time: a deadlock or serialization
/// failure (PostgreSQL), a unique key taken meanwhile, SQLite busy or
/// locked. The same work, tried again in a new transaction, can succeed.
pub fn is_retryable(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => {
                db.is_unique_violation()
                    || matches!(
                        db.code().as_deref(),
                        // PostgreSQL serialization_failure, deadlock_detected;
                        // SQLite BUSY, LOCKED and their extended codes
                        Some("40001" | "40P01" | "5" | "6" | "261" | "262" | "517")
                    )
            }
            _ => false,
        })
}

/// The columns a delivery outcome writes: status, error, delivered, dead, next attempt.
type OutcomeColumns<'a> = (
    Option<i64>,
    Option<&'a str>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// What happened to one webhook delivery attempt.
pub enum WebhookOutcome<'a> {
    Delivered {
        status: u16,
    },
    Retry {
        status: Option<u16>,
        error: &'a str,
        at: DateTime<Utc>,
    },
    Dead {
        status: Option<u16>,
        error: &'a str,
    },
}

pub enum CountedTable {
    Tickets,
    RawMessages,
    Messages,
    PendingMail,
    PendingWebhooks,
}

impl Tx {
    /// Whether this transaction runs on a store several daemons may share
    /// (PostgreSQL), where row locks matter; as [`Store::is_shared`].
    pub fn is_shared(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
        .context("cannot commit")
    }

    /// Stores the raw bytes under `dedup_key`; `None` when that key is
    /// stored already (rule 1, "already seen"), even by another daemon.
    pub async fn insert_raw(&mut self, m: &NewRaw<'_>) -> Result<Option<i64>> {
        if let Tx::Sqlite(t) = self
            && m.raw.len() >= blob::STREAM_FROM
        {
            // a big message goes in by pieces (see store::blob)
            let usual = blob::small_cache(t).await?;
            let inserted = insert_big_raw(t, m).await;
            blob::restore_cache(t, usual).await?;
            return inserted;
        }
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO raw_messages (dedup_key, raw, size, received_at, mailbox, imap_uid, problem, uid_validity) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
            )
            .bind(db_text(m.dedup_key))
            .bind(m.raw)
            .bind(m.raw.len() as i64)
            .bind(m.received_at)
            .bind(m.mailbox)
            .bind(m.imap_uid)
            .bind(m.problem.map(db_text))
            .bind(m.uid_validity)
            .fetch_optional(&mut *c)
            .await
        })?)
    }

    pub async fn is_known(&mut self, dedup_key: &str) -> Result<bool> {
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM raw_messages WHERE dedup_key = $1")
                .bind(db_text(dedup_key))
                .fetch_one(&mut *c)
                .await
        })? > 0)
    }

    pub async fn set_raw_problem(&mut self, raw_id: i64, problem: &str) -> Result<()> {
        on_db!(tx self, c => {
            sqlx::query("UPDATE raw_messages SET problem = $1 WHERE id = $2").bind(db_text(problem)).bind(raw_id).execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The ticket of the first of `ids` that Guichet received or sent (one
    /// query, whatever the length of the References chain; the first 50).
    pub async fn ticket_of_message_ids(&mut self, ids: &[String]) -> Result<Option<(i64, String)>> {
        let ids = &ids[..ids.len().min(50)];
        if ids.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT message_id, ticket_id FROM known_message_ids WHERE message_id IN ({})",
            placeholders(ids.len())
        );
        let found: Vec<(String, i64)> = on_db!(tx self, c => {
            let mut q = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.clone()));
            for id in padded(ids) {
                q = q.bind(db_text(id));
            }
            q.fetch_all(&mut *c).await
        })?;
        // the first in the caller's order wins, as rule 3 says
        Ok(ids.iter().find_map(|id| {
            let stored = db_text(id);
            found
                .iter()
                .find(|(m, _)| *m == *stored)
                .map(|(_, t)| (*t, id.clone()))
        }))
    }

    /// The Message-ID and raw bytes of the ticket's latest message from
    /// its customer side (customer or Cc'd participant): what an agent's
    /// answer, relayed to them, replies to.
    pub async fn last_customer_message(
        &mut self,
        ticket: i64,
    ) -> Result<Option<(String, Vec<u8>)>> {
        Ok(on_db!(tx self, c => {
            sqlx::query_as::<_, (String, Vec<u8>)>(
                // only a relayed agent reply and the closing notice read this,
                // for their References: a big customer message is then read
                // whole, once
                // and only one its customer (or a Cc) sent, so received:
                // a stranger's mail kept on the ticket is nothing they can
                // thread on
                "SELECT m.message_id, COALESCE(b.bytes, r.raw) FROM messages m JOIN raw_messages r ON r.id = m.raw_id \
                 LEFT JOIN raw_message_blobs b ON b.id = r.id \
                 WHERE m.ticket_id = $1 AND m.direction = 'in' AND m.kind = 'customer' \
                 AND m.message_id IS NOT NULL \
                 AND (m.from_addr = (SELECT client FROM tickets WHERE id = $1) \
                      OR m.from_addr IN (SELECT address FROM participants WHERE ticket_id = $1)) \
                 ORDER BY m.id DESC LIMIT 1",
            )
            .bind(ticket)
            .fetch_optional(&mut *c)
            .await
        })?)
    }

    /// A ticket, to decide on and write back in this transaction. On
    /// PostgreSQL the row is locked (`FOR UPDATE`) until the commit, so
    /// that two daemons (or ingest and the auto-close sweep) never decide
    /// on the same ticket at once and overwrite each other's change;
    /// SQLite's `BEGIN IMMEDIATE` already serialises every writer.
    pub async fn ticket(&mut self, id: i64) -> Result<Option<TicketRow>> {
        const SQLITE: &str = "SELECT * FROM tickets WHERE id = $1";
        const POSTGRES: &str = "SELECT * FROM tickets WHERE id = $1 FOR UPDATE";
        Ok(match self {
            Tx::Sqlite(t) => {
                sqlx::query_as::<_, TicketRow>(SQLITE)
                    .bind(id)
                    .fetch_optional(&mut **t)
                    .await?
            }
            Tx::Postgres(t) => {
                sqlx::query_as::<_, TicketRow>(POSTGRES)
                    .bind(id)
                    .fetch_optional(&mut **t)
                    .await?
            }
        })
    }

    pub async fn participants(&mut self, ticket: i64) -> Result<Vec<ParticipantRow>> {
        Ok(on_db!(tx self, c => {
            sqlx::query_as::<_, ParticipantRow>("SELECT * FROM participants WHERE ticket_id = $1 ORDER BY address")
                .bind(ticket)
                .fetch_all(&mut *c)
                .await
        })?)
    }

    /// [`Tx::create_ticket`], returning the whole new row (no second read).
    pub async fn create_ticket_row(&mut self, t: &NewTicket<'_>) -> Result<TicketRow> {
        Ok(on_db!(tx self, c => {
            sqlx::query_as::<_, TicketRow>(
                "INSERT INTO tickets (subject, department, priority, client, status, language, created_at, \
                 last_activity_at, last_message_from, linked_from) \
                 VALUES ($1, $2, 'normal', $3, 'open', $4, $5, $5, 'customer', $6) RETURNING *",
            )
            .bind(db_text(t.subject))
            .bind(t.department)
            .bind(t.client)
            .bind(t.language)
            .bind(t.now)
            .bind(t.linked_from)
            .fetch_one(&mut *c)
            .await
        })?)
    }

    pub async fn create_ticket(&mut self, t: &NewTicket<'_>) -> Result<i64> {
        Ok(self.create_ticket_row(t).await?.id)
    }

    pub async fn add_participant(&mut self, ticket: i64, address: &str, role: &str) -> Result<()> {
        on_db!(tx self, c => {
            sqlx::query("INSERT INTO participants (ticket_id, address, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(ticket)
                .bind(address)
                .bind(role)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Adds a message and remembers its Message-ID for threading.
    /// The newest messages customers and agents wrote on a ticket (not
    /// Guichet's own mail, robots or notes), newest first, without the
    /// message of `raw_id`: `(direction, from, date, text)`.
    pub async fn recent_written(
        &mut self,
        ticket: i64,
        raw_id: i64,
        limit: i64,
    ) -> Result<Vec<(String, String, DateTime<Utc>, String)>> {
        // the limit is written in the statement, not bound: SQLite
        // compiles a bound LIMIT's value into the plan, and then prepares
        // the statement again at every execution
        let sql = format!(
            "SELECT direction, from_addr, date, text FROM messages \
             WHERE ticket_id = $1 AND kind IN ('customer', 'agent') AND direction IN ('in', 'out') \
             AND (raw_id IS NULL OR raw_id <> $2) ORDER BY id DESC LIMIT {}",
            limit.max(0)
        );
        Ok(on_db!(tx self, c => {
            sqlx::query_as::<_, (String, String, DateTime<Utc>, String)>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(ticket)
            .bind(raw_id)
            .fetch_all(&mut *c)
            .await
        })?)
    }

    /// The raw bytes of a stored message, inside the transaction.
    /// The raw mail `raw_id` when it is at most `max` bytes: a bigger one
    /// is not read at all (its size is in the row; its bytes would only
    /// be thrown away).
    pub async fn raw_bytes_up_to(&mut self, raw_id: i64, max: usize) -> Result<Option<Vec<u8>>> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, Vec<u8>>("SELECT COALESCE(b.bytes, r.raw) FROM raw_messages r LEFT JOIN raw_message_blobs b ON b.id = r.id WHERE r.id = $1 AND LENGTH(COALESCE(b.bytes, r.raw)) <= $2")
                .bind(raw_id)
                .bind(max)
                .fetch_optional(&mut *c)
                .await
        })?)
    }

    pub async fn add_message(&mut self, m: &NewMessage<'_>) -> Result<i64> {
        let id = on_db!(tx self, c => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO messages (ticket_id, raw_id, direction, kind, from_addr, date, message_id, rule, text, note, signed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            )
            .bind(m.ticket_id)
            .bind(m.raw_id)
            .bind(m.direction)
            .bind(m.kind)
            .bind(m.from_addr)
            .bind(m.date)
            .bind(m.message_id.map(db_text))
            .bind(m.rule)
            .bind(db_text(m.text))
            .bind(m.note.map(db_text))
            .bind(m.signed)
            .fetch_one(&mut *c)
            .await
        })?;
        // its Message-ID is remembered by the database (trigger
        // `messages_known_message_id`, migration 0014)
        Ok(id)
    }

    pub async fn add_attachment(&mut self, a: &NewAttachment<'_>) -> Result<()> {
        on_db!(tx self, c => {
            sqlx::query(
                "INSERT INTO attachments (message_id, ticket_id, filename, extension, size, declared_type, sniffed_type, \
                 sha256, verdict, reason_code, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(a.message_id)
            .bind(a.ticket_id)
            .bind(db_text(a.filename))
            .bind(a.extension.map(db_text))
            .bind(a.size)
            .bind(db_text(a.declared_type))
            .bind(a.sniffed_type.map(db_text))
            .bind(a.sha256)
            .bind(a.verdict)
            .bind(a.reason_code)
            .bind(a.reason.map(db_text))
            .bind(a.created_at)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Writes back the mutable fields of a ticket.
    pub async fn save_ticket(&mut self, t: &TicketRow) -> Result<()> {
        on_db!(tx self, c => {
            sqlx::query(
                "UPDATE tickets SET subject = $1, department = $2, priority = $3, status = $4, last_activity_at = $5, \
                 last_message_from = $6, first_agent_reply_at = $7, closed_at = $8, close_reason = $9 WHERE id = $10",
            )
            .bind(db_text(&t.subject))
            .bind(&t.department)
            .bind(&t.priority)
            .bind(&t.status)
            .bind(t.last_activity_at)
            .bind(&t.last_message_from)
            .bind(t.first_agent_reply_at)
            .bind(t.closed_at)
            .bind(&t.close_reason)
            .bind(t.id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Records an event on its ticket and queues one delivery per endpoint
    /// that wants it: in the same transaction as the change (outbox).
    pub async fn record_event(&mut self, e: &NewEvent<'_>, endpoints: &[&str]) -> Result<()> {
        on_db!(tx self, c => {
            sqlx::query("INSERT INTO ticket_events (event_id, ticket_id, event, occurred_at, data) VALUES ($1, $2, $3, $4, $5)")
                .bind(e.event_id)
                .bind(e.ticket_id)
                .bind(e.event)
                .bind(e.occurred_at)
                .bind(e.data)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
        })?;
        for endpoint in endpoints {
            on_db!(tx self, c => {
                sqlx::query(
                    "INSERT INTO webhook_outbox (event_id, endpoint, ticket_id, payload, created_at, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
                )
                .bind(e.event_id)
                .bind(*endpoint)
                .bind(e.ticket_id)
                .bind(e.payload)
                .bind(e.occurred_at)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    pub async fn set_mailbox_state(
        &mut self,
        mailbox: &str,
        uidvalidity: i64,
        last_uid: i64,
    ) -> Result<()> {
        on_db!(tx self, c => {
            sqlx::query(
                "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid) VALUES ($1, $2, $3) \
                 ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, \
                 last_uid = CASE WHEN mailbox_state.uidvalidity = excluded.uidvalidity \
                   AND mailbox_state.last_uid > excluded.last_uid THEN mailbox_state.last_uid ELSE excluded.last_uid END, \
                 catch_up_from = CASE WHEN mailbox_state.uidvalidity = excluded.uidvalidity \
                   THEN mailbox_state.catch_up_from ELSE 0 END",
            )
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(last_uid)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn auto_replies_since(&mut self, address: &str, since: DateTime<Utc>) -> Result<i64> {
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM auto_replies WHERE address = $1 AND sent_at >= $2")
                .bind(address)
                .bind(since)
                .fetch_one(&mut *c)
                .await
        })?)
    }

    /// An open ticket that a late reply to the closed `ticket` opened
    /// (the newest), which later late replies join.
    pub async fn open_linked_ticket(&mut self, ticket: i64) -> Result<Option<i64>> {
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM tickets WHERE linked_from = $1 AND status IN ('open', 'awaiting_customer') \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(ticket)
            .fetch_optional(&mut *c)
            .await
        })?)
    }

    /// Agents' answers queued for the ticket's customer since `since`
    /// (the relay rate limit against robots answering robots).
    pub async fn relays_since(&mut self, ticket: i64, since: DateTime<Utc>) -> Result<i64> {
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM outbox_mail WHERE ticket_id = $1 AND kind = 'agent_reply' AND created_at >= $2",
            )
            .bind(ticket)
            .bind(since)
            .fetch_one(&mut *c)
            .await
        })?)
    }

    /// The text and date of the ticket's latest answer relayed to its
    /// customer.
    pub async fn last_relayed_answer(
        &mut self,
        ticket: i64,
    ) -> Result<Option<(String, DateTime<Utc>)>> {
        Ok(on_db!(tx self, c => {
            sqlx::query_as::<_, (String, DateTime<Utc>)>(
                "SELECT text, date FROM messages WHERE ticket_id = $1 AND direction = 'out' AND kind = 'agent' \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(ticket)
            .fetch_optional(&mut *c)
            .await
        })?)
    }

    /// Records a refused recipient (see [`NewRefusal`]).
    pub async fn record_refusal(&mut self, r: &NewRefusal<'_>) -> Result<()> {
        on_db!(tx self, c => {
            sqlx::query(
                "INSERT INTO mail_refusals (ticket_id, outbox_id, message_id, kind, address, main, source, reply, refused_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(r.ticket_id)
            .bind(r.outbox_id)
            .bind(db_text(r.message_id))
            .bind(r.kind)
            .bind(r.address)
            .bind(r.main)
            .bind(r.source)
            .bind(db_text(r.reply))
            .bind(r.now)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The addresses refused for good on this ticket and not named again
    /// since (lowercase).
    pub async fn refused_addresses(&mut self, ticket: i64) -> Result<Vec<String>> {
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT lower(address) FROM mail_refusals WHERE ticket_id = $1 AND cleared_at IS NULL",
            )
            .bind(ticket)
            .fetch_all(&mut *c)
            .await
        })?)
    }

    /// Someone named these addresses again: they are mailed again.
    pub async fn clear_refusals(
        &mut self,
        ticket: i64,
        addresses: &[String],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if addresses.is_empty() {
            return Ok(());
        }
        // one statement for all of them (a message names several)
        let list = (0..addresses.len())
            .map(|i| format!("lower(${})", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE mail_refusals SET cleared_at = $1 WHERE ticket_id = $2 AND cleared_at IS NULL \
             AND lower(address) IN ({list})"
        );
        on_db!(tx self, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(now).bind(ticket);
            for a in addresses {
                q = q.bind(a);
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The ticket's latest answer to its customer never reached them: its
    /// main recipient was refused (and not named again since).
    pub async fn last_answer_undelivered(&mut self, ticket: i64) -> Result<bool> {
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM mail_refusals WHERE ticket_id = $1 AND main AND cleared_at IS NULL \
                 AND message_id = (SELECT message_id FROM outbox_mail WHERE ticket_id = $1 AND kind = 'agent_reply' \
                 ORDER BY id DESC LIMIT 1)",
            )
            .bind(ticket)
            .fetch_one(&mut *c)
            .await
        })? > 0)
    }

    /// A mail Guichet queued, by its Message-ID (without `<>`).
    pub async fn outbox_mail_by_message_id(
        &mut self,
        message_id: &str,
    ) -> Result<Option<SentMailRow>> {
        Ok(on_db!(tx self, c => {
            sqlx::query_as::<_, SentMailRow>(
                "SELECT id, ticket_id, kind, recipients, message_id FROM outbox_mail WHERE message_id = $1 \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(db_text(message_id))
            .fetch_optional(&mut *c)
            .await
        })?)
    }

    /// Who wrote the ticket's latest answer relayed to its customer.
    pub async fn last_answer_author(&mut self, ticket: i64) -> Result<Option<String>> {
        Ok(on_db!(tx self, c => {
            sqlx::query_scalar::<_, String>(
                "SELECT from_addr FROM messages WHERE ticket_id = $1 AND direction = 'out' AND kind = 'agent' \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(ticket)
            .fetch_optional(&mut *c)
            .await
        })?)
    }

    pub async fn record_auto_reply(&mut self, address: &str, at: DateTime<Utc>) -> Result<()> {
        on_db!(tx self, c => {
            sqlx::query("INSERT INTO auto_replies (address, sent_at) VALUES ($1, $2)")
                .bind(address)
                .bind(at)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

/// Whether a connection coming back to the pool may be handed out again:
/// only when it is outside any transaction. A transaction whose statement
/// or COMMIT failed was dropped, which queued its ROLLBACK (run before
/// anything else on the connection); but SQLite rolls a
/// transaction back by itself on some errors ("database or disk is full",
/// I/O errors), that ROLLBACK then fails, and sqlx still counts the
/// connection as inside a transaction: every later `BEGIN` on it failed
/// with "attempted to call begin_with at non-zero transaction depth"
/// (issue 25). Such a connection, or one where SQLite itself is still in
/// a transaction, is in doubt: `false` closes it (closing rolls back
/// whatever is left) and the pool opens a fresh one when next asked.
async fn sqlite_clean(c: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !c.is_in_transaction() {
        // committed or never in one: the usual case, at no cost
        return Ok(true);
    }
    // a dropped transaction's ROLLBACK is queued: the worker runs it
    // before handing over the handle, so both counts are final then
    let autocommit = blob::autocommit(c).await?;
    let clean = !c.is_in_transaction() && autocommit;
    if !clean {
        tracing::info!("closing a database connection left inside a failed transaction");
    }
    Ok(clean)
}

/// [`sqlite_clean`] for PostgreSQL, where a dropped transaction's queued
/// ROLLBACK already counts; the pool's own ping then sends it, and closes
/// a connection that fails it.
async fn postgres_clean(c: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    let clean = !c.is_in_transaction();
    if !clean {
        tracing::info!("closing a database connection left inside a failed transaction");
    }
    Ok(clean)
}

/// An exclusive lock on `<db>.migrate-lock`, held until the file is
/// dropped: processes that open or migrate one SQLite file take turns.
async fn lock_beside(db: &Path) -> Result<std::fs::File> {
    let name = beside(db, ".migrate-lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .with_context(|| format!("cannot open {}", Path::new(&name).display()))?;
    crate::adapters::ownership::give_to_owner_of(folder_of(db), &[Path::new(&name)])?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await?
        .context("cannot lock the database file")
}

/// The database's file, or `None` for a database in memory (sqlx names
/// those `file:sqlx-in-memory-N`: no lock file beside them).
fn on_disk(db: &Path) -> Option<&Path> {
    let name = db.as_os_str();
    let in_memory =
        name.is_empty() || name == ":memory:" || name.as_encoded_bytes().starts_with(b"file:");
    (!in_memory).then_some(db)
}

/// `<db><suffix>`: the files SQLite and Guichet keep beside a database.
fn beside(db: &Path, suffix: &str) -> std::ffi::OsString {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    name
}

/// The folder a database file is in (`.` for a bare file name).
fn folder_of(db: &Path) -> &Path {
    db.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Longest `IN (…)` list in one statement.
const IN_LIST_MAX: usize = 64;

/// `$1, $2, …` for an `IN` list of `n` values, rounded up to a power of
/// two so that few distinct statements reach the prepared-statement cache.
fn placeholders(n: usize) -> String {
    (1..=n.next_power_of_two().min(IN_LIST_MAX))
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `values`, with the last one repeated up to the length [`placeholders`]
/// gave (a repeated value changes nothing in an `IN` list).
fn padded<T: AsRef<str>>(values: &[T]) -> impl Iterator<Item = &str> {
    let n = values.len().next_power_of_two().min(IN_LIST_MAX);
    let last = values.last().map(|v| v.as_ref()).unwrap_or("");
    values
        .iter()
        .map(|v| v.as_ref())
        .chain(std::iter::repeat(last))
        .take(n.max(values.len()))
}

/// [`Tx::insert_raw`] of a big message on SQLite (see store::blob).
async fn insert_big_raw(c: &mut sqlx::SqliteConnection, m: &NewRaw<'_>) -> Result<Option<i64>> {
    let id = sqlx::query_scalar::<_, i64>(
        "INSERT INTO raw_messages (dedup_key, raw, size, received_at, mailbox, imap_uid, problem, uid_validity) \
         VALUES ($1, x'', $2, $3, $4, $5, $6, $7) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(db_text(m.dedup_key))
    .bind(m.raw.len() as i64)
    .bind(m.received_at)
    .bind(m.mailbox)
    .bind(m.imap_uid)
    .bind(m.problem.map(db_text))
    .bind(m.uid_validity)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(id) = id {
        blob::insert(c, "raw_message_blobs", id, m.raw).await?;
    }
    Ok(id)
}
