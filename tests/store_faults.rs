//! Every failing store path leaves the pool usable (issue 25): a
//! transaction whose begin, statement, blob write or commit fails is rolled
//! back, a connection left in doubt is closed rather than handed out again,
//! and the next transaction works once the fault is gone. On SQLite the
//! faults are real: "database or disk is full" from a tiny
//! `max_page_count`, a COMMIT that finds its small file system full, a
//! write lock held elsewhere; on PostgreSQL a commit refused by a deferred
//! constraint and a connection killed under a transaction.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use guichet::store::{Fault, NewMail, NewRaw, Store, Tx, fault_of};
use sqlx::Connection;
use support::{fresh_pg_database, fresh_sqlite_url, unique_token};

/// "database or disk is full", seen as the store fault it is.
fn assert_full(err: &anyhow::Error) {
    assert!(
        format!("{err:#}").contains("full"),
        "disk full expected: {err:#}"
    );
    assert_eq!(fault_of(err), Some(Fault::DiskFull), "{err:#}");
}

fn raw_of(size: usize) -> Vec<u8> {
    let mut raw = b"From: a@example.test\r\nSubject: big\r\n\r\n".to_vec();
    // not compressible by anything: SQLite stores it as it is
    raw.extend((0..size).map(|i| b'a' + ((i * 7919 + i / 13) % 26) as u8));
    raw
}

fn new_raw<'a>(key: &'a str, raw: &'a [u8]) -> NewRaw<'a> {
    NewRaw {
        dedup_key: key,
        raw,
        received_at: Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap(),
        mailbox: Some("support@host/INBOX"),
        imap_uid: Some(1),
        uid_validity: Some(1),
        problem: None,
    }
}

/// One whole transaction storing `size` bytes of raw mail.
async fn store_raw(store: &Store, size: usize) -> anyhow::Result<()> {
    let raw = raw_of(size);
    let key = format!("key-{}", unique_token());
    let mut tx = store.begin().await?;
    tx.insert_raw(&new_raw(&key, &raw)).await?;
    tx.commit().await
}

async fn sqlite_store(dir: &Path) -> Store {
    let store = Store::connect(&fresh_sqlite_url(dir)).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A statement on the pool (SQLite: its one connection).
async fn pragma(store: &Store, sql: &'static str) -> i64 {
    let Store::Sqlite(pool) = store else {
        panic!("a SQLite store")
    };
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_optional(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or(0)
}

/// A store whose database is capped a few pages above its size, on every
/// connection the pool opens: the next sizeable write fails with
/// "database or disk is full".
async fn nearly_full_store(dir: &Path) -> Store {
    let url = fresh_sqlite_url(dir);
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let pages = pragma(&store, "PRAGMA page_count").await;
    store.close().await;
    let opts = Store::sqlite_options(&url)
        .unwrap()
        .pragma("max_page_count", (pages + 4).to_string());
    Store::connect_sqlite(opts).await.unwrap()
}

async fn freed(store: &Store) {
    pragma(store, "PRAGMA max_page_count = 1073741823").await;
}

async fn raw_count(store: &Store) -> i64 {
    store
        .count(guichet::store::CountedTable::RawMessages)
        .await
        .unwrap()
}

/// The pool hands out a working connection again: several transactions in
/// a row begin, write and commit.
async fn assert_usable(store: &Store, before: i64) {
    for _ in 0..3 {
        store_raw(store, 1000)
            .await
            .unwrap_or_else(|e| panic!("the next transaction fails: {e:#}"));
    }
    assert_eq!(raw_count(store).await, before + 3, "every write committed");
}

#[tokio::test]
async fn sqlite_statement_disk_full_leaves_the_pool_usable() {
    let dir = tempfile::tempdir().unwrap();
    let store = nearly_full_store(dir.path()).await;
    // a statement that needs more pages than are left
    let err = store_raw(&store, 100_000).await.unwrap_err();
    assert_full(&err);
    // the same again: still the fault, not a broken connection
    let err = store_raw(&store, 100_000).await.unwrap_err();
    assert_full(&err);
    // an INSERT that SQLite answers by rolling the whole transaction back
    let raw = raw_of(200_000);
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .enqueue_mail(&NewMail {
            ticket_id: None,
            kind: "ack",
            envelope_from: "support@example.test",
            recipients: "ann@example.test",
            message_id: "<statement@guichet.test>",
            raw: &raw,
            now: Utc::now(),
        })
        .await
        .unwrap_err();
    assert_full(&err);
    drop(tx);
    freed(&store).await;
    assert_usable(&store, 0).await;
}

#[tokio::test]
async fn sqlite_blob_write_disk_full_leaves_the_pool_usable() {
    let dir = tempfile::tempdir().unwrap();
    let store = nearly_full_store(dir.path()).await;
    // a big message goes in by pieces (store/blob.rs)
    let err = store_raw(&store, 600_000).await.unwrap_err();
    assert_full(&err);
    // a big outgoing mail too
    let raw = raw_of(600_000);
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .enqueue_mail(&NewMail {
            ticket_id: None,
            kind: "ack",
            envelope_from: "support@example.test",
            recipients: "ann@example.test",
            message_id: "<big@guichet.test>",
            raw: &raw,
            now: Utc::now(),
        })
        .await
        .unwrap_err();
    assert_full(&err);
    drop(tx);
    freed(&store).await;
    assert_usable(&store, 0).await;
    // and the big ones fit now
    store_raw(&store, 600_000).await.unwrap();
}

#[tokio::test]
async fn sqlite_commit_on_a_full_file_system_leaves_the_pool_usable() {
    let Some(mount) = SmallFs::mount("2m") else {
        return;
    };
    let store = sqlite_store(&mount.dir).await;
    store_raw(&store, 1000).await.unwrap();
    // the file system full to a few pages: the statement's pages stay in
    // SQLite's cache, the COMMIT writes them to the WAL and finds no room
    let filler = mount.fill_leaving(48 * 1024);
    let raw = raw_of(200_000);
    let mut tx = store.begin().await.unwrap();
    tx.insert_raw(&new_raw("commit-fails", &raw))
        .await
        .expect("the statement itself fits in memory");
    let err = tx.commit().await.unwrap_err();
    assert_full(&err);
    // still full: the next transaction fails the same way, cleanly
    let err = store_raw(&store, 200_000).await.unwrap_err();
    assert_full(&err);
    std::fs::remove_file(&filler).unwrap();
    assert_usable(&store, 1).await;
    drop(store);
}

#[tokio::test]
async fn sqlite_begin_refused_leaves_the_pool_usable() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_sqlite_url(dir.path());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    pragma(&store, "PRAGMA busy_timeout = 200").await;
    // another process holds the write lock: BEGIN IMMEDIATE is refused
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let err = store.begin().await.err().expect("begin refused");
    assert!(
        guichet::store::is_retryable(&err),
        "busy, to be tried again: {err:#}"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    assert_usable(&store, 0).await;
}

#[tokio::test]
async fn postgres_commit_refused_leaves_the_pool_usable() {
    let url = fresh_pg_database().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let Store::Postgres(pool) = &store else {
        unreachable!()
    };
    sqlx::raw_sql(
        "CREATE TABLE fault_parent (id INT PRIMARY KEY); \
         CREATE TABLE fault_child (parent INT REFERENCES fault_parent (id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .execute(pool)
    .await
    .unwrap();
    for _ in 0..3 {
        let mut tx = store.begin().await.unwrap();
        let Tx::Postgres(t) = &mut tx else {
            unreachable!()
        };
        sqlx::query("INSERT INTO fault_child VALUES (42)")
            .execute(&mut **t)
            .await
            .expect("checked at COMMIT only");
        let err = tx.commit().await.unwrap_err();
        assert!(format!("{err:#}").contains("foreign key"), "{err:#}");
    }
    assert_usable(&store, 0).await;
}

#[tokio::test]
async fn postgres_connection_killed_in_a_transaction_leaves_the_pool_usable() {
    let url = fresh_pg_database().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&support::rig().pg_admin_url)
        .await
        .unwrap();
    // killed after BEGIN, before a statement; then after a statement,
    // before the COMMIT
    for kill_before_commit in [false, true] {
        let mut tx = store.begin().await.unwrap();
        let Tx::Postgres(t) = &mut tx else {
            unreachable!()
        };
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut **t)
            .await
            .unwrap();
        if kill_before_commit {
            let raw = raw_of(1000);
            tx.insert_raw(&new_raw(&unique_token(), &raw))
                .await
                .unwrap();
        }
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let failed = if kill_before_commit {
            tx.commit().await
        } else {
            let raw = raw_of(1000);
            tx.insert_raw(&new_raw(&unique_token(), &raw))
                .await
                .map(|_| ())
        };
        assert!(failed.is_err(), "the dead connection failed");
    }
    assert_usable(&store, 0).await;
}

/// A tmpfs of its own (the test runs as root in CI), unmounted on drop.
struct SmallFs {
    _base: tempfile::TempDir,
    dir: PathBuf,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        // SAFETY: geteuid has no preconditions
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "\n!!!! SKIPPED: mounting a small file system needs root (CI runs as root) !!!!\n"
            );
            return None;
        }
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("fs");
        std::fs::create_dir(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs");
        Some(SmallFs { _base: base, dir })
    }

    /// Fills the file system until `room` bytes are left; returns the
    /// filler's path.
    fn fill_leaving(&self, room: u64) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x55u8; 4096];
        let mut written = 0u64;
        while f.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        let _ = f.flush();
        f.set_len(written.saturating_sub(room)).unwrap();
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}
