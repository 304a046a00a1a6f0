//! Store faults: errors that say the place where Guichet keeps its data
//! (the database, the attachment files) cannot take a write right now —
//! a full disk, a read-only or failing file system, a database that is
//! down — as opposed to a problem with one message. A store fault pauses
//! intake until the store takes writes again; it never makes a message
//! a "problem" or flags it done.

use std::fmt;
use std::io;

pub use crate::domain::Fault;

/// An error of SQLite's own API (store/blob.rs), with its result code.
#[derive(Debug)]
pub struct SqliteCallError {
    pub what: &'static str,
    pub code: i32,
    pub message: String,
}

impl fmt::Display for SqliteCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} (SQLite error {}): {}",
            self.what, self.code, self.message
        )
    }
}

impl std::error::Error for SqliteCallError {}

/// The store fault behind `error`, if any cause in its chain is one.
pub fn fault_of(error: &anyhow::Error) -> Option<Fault> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            return sqlx_fault(e);
        }
        if let Some(e) = cause.downcast_ref::<SqliteCallError>() {
            return sqlite_code_fault(e.code);
        }
        if let Some(e) = cause.downcast_ref::<io::Error>() {
            return io_fault(e);
        }
        None
    })
}

fn sqlx_fault(e: &sqlx::Error) -> Option<Fault> {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            if let Ok(n) = code.parse::<i32>() {
                // SQLite: the primary code is the low byte of an extended one
                return sqlite_code_fault(n);
            }
            postgres_state_fault(&code)
        }
        sqlx::Error::Io(io) => io_fault(io).or(Some(Fault::Unavailable)),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => Some(Fault::Unavailable),
        // a connection left inside a transaction (what issue 25 was): in
        // doubt, so the store's, not the message's
        sqlx::Error::InvalidSavePointStatement | sqlx::Error::BeginFailed => Some(Fault::Io),
        _ => None,
    }
}

/// SQLite result codes (primary or extended).
pub fn sqlite_code_fault(code: i32) -> Option<Fault> {
    match code & 0xff {
        13 => Some(Fault::DiskFull), // SQLITE_FULL
        8 => Some(Fault::ReadOnly),  // SQLITE_READONLY
        10 | 14 => Some(Fault::Io),  // SQLITE_IOERR, SQLITE_CANTOPEN
        _ => None,
    }
}

/// PostgreSQL SQLSTATEs.
fn postgres_state_fault(state: &str) -> Option<Fault> {
    match state {
        "53100" => Some(Fault::DiskFull), // disk_full
        "25006" => Some(Fault::ReadOnly), // read_only_sql_transaction
        "58030" => Some(Fault::Io),       // io_error
        // insufficient resources, connection exceptions, the server
        // shutting down or starting (admin_shutdown, crash_shutdown,
        // cannot_connect_now)
        s if s.starts_with("53") || s.starts_with("08") || s.starts_with("57P") => {
            Some(Fault::Unavailable)
        }
        _ => None,
    }
}

fn io_fault(e: &io::Error) -> Option<Fault> {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            return Some(Fault::DiskFull);
        }
        io::ErrorKind::ReadOnlyFilesystem => return Some(Fault::ReadOnly),
        _ => {}
    }
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => Some(Fault::DiskFull),
        Some(libc::EROFS) => Some(Fault::ReadOnly),
        Some(libc::EIO) => Some(Fault::Io),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_found_anywhere_in_the_chain() {
        let cases: Vec<(anyhow::Error, Option<Fault>)> = vec![
            (
                anyhow::Error::new(io::Error::from_raw_os_error(libc::ENOSPC))
                    .context("cannot store attachment a.png"),
                Some(Fault::DiskFull),
            ),
            (
                anyhow::Error::new(io::Error::from_raw_os_error(libc::EROFS)),
                Some(Fault::ReadOnly),
            ),
            (
                anyhow::Error::new(io::Error::from_raw_os_error(libc::EIO)),
                Some(Fault::Io),
            ),
            (
                anyhow::Error::new(io::Error::from_raw_os_error(libc::EDQUOT)),
                Some(Fault::DiskFull),
            ),
            // a missing file or a refused permission is not a store fault
            (
                anyhow::Error::new(io::Error::from_raw_os_error(libc::ENOENT)),
                None,
            ),
            (
                anyhow::Error::new(SqliteCallError {
                    what: "write a blob",
                    code: 13,
                    message: "database or disk is full".into(),
                })
                .context("cannot commit"),
                Some(Fault::DiskFull),
            ),
            (
                anyhow::Error::new(sqlx::Error::PoolTimedOut),
                Some(Fault::Unavailable),
            ),
            (
                anyhow::Error::new(sqlx::Error::Io(io::Error::from(
                    io::ErrorKind::ConnectionReset,
                ))),
                Some(Fault::Unavailable),
            ),
            (
                anyhow::Error::new(sqlx::Error::InvalidSavePointStatement),
                Some(Fault::Io),
            ),
            (anyhow::anyhow!("no From header"), None),
            (anyhow::Error::new(sqlx::Error::RowNotFound), None),
        ];
        for (error, want) in cases {
            assert_eq!(fault_of(&error), want, "{error:#}");
        }
    }

    #[test]
    fn sqlite_and_postgres_codes() {
        for (code, want) in [
            (13, Some(Fault::DiskFull)),
            (8, Some(Fault::ReadOnly)),
            (1032, Some(Fault::ReadOnly)), // READONLY_DBMOVED
            (10, Some(Fault::Io)),
            (778, Some(Fault::Io)), // IOERR_WRITE
            (14, Some(Fault::Io)),
            (5, None),    // BUSY: a concurrent writer, tried again
            (19, None),   // CONSTRAINT
            (2067, None), // CONSTRAINT_UNIQUE
        ] {
            assert_eq!(sqlite_code_fault(code), want, "SQLite {code}");
        }
        for (state, want) in [
            ("53100", Some(Fault::DiskFull)),
            ("25006", Some(Fault::ReadOnly)),
            ("58030", Some(Fault::Io)),
            ("57P01", Some(Fault::Unavailable)),
            ("08006", Some(Fault::Unavailable)),
            ("53300", Some(Fault::Unavailable)),
            ("23505", None),
            ("40001", None),
            ("40P01", None),
        ] {
            assert_eq!(postgres_state_fault(state), want, "SQLSTATE {state}");
        }
    }
}
