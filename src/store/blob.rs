//! Big SQLite blobs written and read in pieces (SQLite's incremental blob
//! I/O), which sqlx does not offer.
//!
//! Why: binding a blob through sqlx costs three copies of it at once (sqlx
//! copies a borrowed slice into its arguments, `sqlite3_bind_blob` copies it
//! again, and the row record built for the INSERT is a third), and reading
//! one costs two (SQLite assembles the overflow pages, sqlx copies them out).
//! With a 34 MB message that was 100 MB for a moment. Here the blob gets a
//! row of its own (raw_message_blobs, outbox_mail_blobs: see
//! migrations/sqlite/0002), inserted as `zeroblob(n)` (which ends the row,
//! so SQLite builds no zeros in memory), and the bytes are then written through
//! `sqlite3_blob_write` in 1 MiB pieces, and read back straight into one
//! buffer of the right size. Meanwhile the connection's page cache is made
//! small: a big blob's pages are written or read once, and the usual
//! cache (16 MB, Store::connect) would only fill up with them.

use std::ffi::{CStr, CString, c_int};
use std::ptr::{self, NonNull};

use anyhow::{Result, bail};
use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;

/// Blobs smaller than this go through sqlx as usual: a copy or two of a
/// few kilobytes costs less than the extra statement.
pub const STREAM_FROM: usize = 256 * 1024;

const PIECE: usize = 1 << 20;
/// The page cache while a big blob passes (KiB, as `PRAGMA cache_size=-N`).
const SMALL_CACHE_KIB: i64 = 1024;

/// A blob handle, closed on drop.
struct Blob(NonNull<ffi::sqlite3_blob>);

impl Drop for Blob {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful sqlite3_blob_open and is
        // closed only here, once.
        unsafe { ffi::sqlite3_blob_close(self.0.as_ptr()) };
    }
}

/// SQLite's error as a typed one, so that a full disk or an I/O error
/// while a blob is written is seen as a store fault (store::fault).
fn error(db: *mut ffi::sqlite3, what: &'static str, rc: c_int) -> anyhow::Error {
    // SAFETY: `db` is a live connection handle; sqlite3_errmsg returns a
    // NUL-terminated string owned by SQLite, copied out at once.
    let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }.to_string_lossy();
    anyhow::Error::new(super::fault::SqliteCallError {
        what,
        code: rc,
        message: msg.into_owned(),
    })
}

/// Whether SQLite itself is outside any transaction on this connection
/// (`sqlite3_get_autocommit`), whatever sqlx counts.
pub async fn autocommit(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    let mut locked = conn.lock_handle().await?;
    // SAFETY: the handle is live and held under sqlx's lock for the call.
    Ok(unsafe { ffi::sqlite3_get_autocommit(locked.as_raw_handle().as_ptr()) } != 0)
}

/// Opens `table.column` of row `rowid` (in the connection's current
/// transaction, if any).
fn open(db: *mut ffi::sqlite3, table: &str, column: &str, rowid: i64, write: bool) -> Result<Blob> {
    let (table, column) = (CString::new(table)?, CString::new(column)?);
    let mut handle = ptr::null_mut();
    // SAFETY: `db` is a live connection handle held under sqlx's lock for
    // the duration of the call; the strings outlive it.
    let rc = unsafe {
        ffi::sqlite3_blob_open(
            db,
            c"main".as_ptr(),
            table.as_ptr(),
            column.as_ptr(),
            rowid,
            c_int::from(write),
            &mut handle,
        )
    };
    match NonNull::new(handle) {
        Some(h) if rc == ffi::SQLITE_OK => Ok(Blob(h)),
        Some(h) => {
            drop(Blob(h));
            Err(error(db, "open a blob", rc))
        }
        None => Err(error(db, "open a blob", rc)),
    }
}

/// Inserts row `id` of `table` (raw_message_blobs, outbox_mail_blobs)
/// with `bytes` as its `bytes` column: a `zeroblob` of their size first,
/// then the bytes by pieces.
pub async fn insert(
    conn: &mut SqliteConnection,
    table: &'static str,
    id: i64,
    bytes: &[u8],
) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (id, bytes) VALUES ($1, zeroblob($2))"
    )))
    .bind(id)
    .bind(bytes.len() as i64)
    .execute(&mut *conn)
    .await?;
    write(conn, table, "bytes", id, bytes).await
}

/// Writes `bytes` over the blob `table.column` of row `rowid`, which must
/// hold exactly `bytes.len()` bytes (inserted as `zeroblob(len)`).
async fn write(
    conn: &mut SqliteConnection,
    table: &str,
    column: &str,
    rowid: i64,
    bytes: &[u8],
) -> Result<()> {
    if i32::try_from(bytes.len()).is_err() {
        bail!("a blob of {} bytes is over SQLite's limit", bytes.len());
    }
    let mut locked = conn.lock_handle().await?;
    let db = locked.as_raw_handle().as_ptr();
    let blob = open(db, table, column, rowid, true)?;
    // SAFETY: the handle is open; every piece lies inside the blob, whose
    // size was checked first.
    let size = unsafe { ffi::sqlite3_blob_bytes(blob.0.as_ptr()) };
    if usize::try_from(size).ok() != Some(bytes.len()) {
        bail!("blob of {size} bytes for {} bytes of data", bytes.len());
    }
    for (i, piece) in bytes.chunks(PIECE).enumerate() {
        let rc = unsafe {
            ffi::sqlite3_blob_write(
                blob.0.as_ptr(),
                piece.as_ptr().cast(),
                piece.len() as c_int,
                (i * PIECE) as c_int,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, "write a blob", rc));
        }
    }
    Ok(())
}

/// Shrinks the page cache (SQLite frees the clean pages over the new
/// size at once) while a big blob is inserted, written or read; returns
/// the setting to give back to [`restore_cache`].
pub async fn small_cache(conn: &mut SqliteConnection) -> Result<i64> {
    let usual: i64 = sqlx::query_scalar("PRAGMA cache_size")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA cache_size = -{SMALL_CACHE_KIB}"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(usual)
}

pub async fn restore_cache(conn: &mut SqliteConnection, usual: i64) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = {usual}")))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The whole blob `table.column` of row `rowid`, read into one buffer.
pub async fn read(
    conn: &mut SqliteConnection,
    table: &str,
    column: &str,
    rowid: i64,
) -> Result<Vec<u8>> {
    let mut locked = conn.lock_handle().await?;
    let db = locked.as_raw_handle().as_ptr();
    let blob = open(db, table, column, rowid, false)?;
    // SAFETY: the handle is open; the buffer has room for every piece read
    // into it, and its length is set only to what was read.
    let size = unsafe { ffi::sqlite3_blob_bytes(blob.0.as_ptr()) } as usize;
    let mut out = Vec::<u8>::with_capacity(size);
    let mut at = 0;
    while at < size {
        let n = PIECE.min(size - at);
        let rc = unsafe {
            ffi::sqlite3_blob_read(
                blob.0.as_ptr(),
                out.as_mut_ptr().add(at).cast(),
                n as c_int,
                at as c_int,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, "read a blob", rc));
        }
        at += n;
        unsafe { out.set_len(at) };
    }
    Ok(out)
}
