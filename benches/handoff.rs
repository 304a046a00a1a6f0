//! What handing each statement to sqlx's SQLite worker thread costs
//! (issue 17). Ingest makes about twelve statements a message, and each
//! crosses to sqlx's worker thread and back; the profiles show that
//! hand-off (flume, futex, task switches) beside SQLite's own work, but not
//! how much of it is real cost. This measures it apart from everything
//! else: the same ingest-shaped transactions (50 "messages" of twelve
//! inserts each, one with a 3 KB blob, into tables with a unique key and
//! an index) on the same kind of database (a file, WAL, `synchronous =
//! NORMAL`, the store's own options), run two ways in alternating rounds:
//!
//! - *sqlx*: every statement through `sqlx::query(..).execute(..)`, as the
//!   store does today (statements cached by sqlx);
//! - *one hand-off*: the connection locked once per transaction
//!   (`SqliteConnection::lock_handle`) and the same statements prepared,
//!   bound and stepped on the calling thread through libsqlite3-sys.
//!
//! It prints the medians of statements/s and CPU per statement of each,
//! and the ratio. The process keeps to one CPU, as the daemon does.
//!
//! `cargo bench --bench handoff [-- --messages N --rounds R]` (default
//! N = 5000 a round, R = 5). Under `cargo test --all-targets` it only says
//! how to run it.

#[path = "common/args.rs"]
mod args;
use args::{arg, bench_args};

use std::ffi::{CString, c_int};
use std::time::Instant;

use guichet::store::Store;
use libsqlite3_sys as ffi;
use sqlx::{Connection, SqliteConnection};

/// Statements a message makes in this workload (about what ingest makes).
const STATEMENTS: usize = 12;
/// Messages a transaction (ingest's batch).
const BATCH: usize = 50;

const SCHEMA: &str = "CREATE TABLE raw (id INTEGER PRIMARY KEY, dedup TEXT NOT NULL UNIQUE, at INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE item (id INTEGER PRIMARY KEY, raw_id INTEGER NOT NULL, kind TEXT NOT NULL, address TEXT NOT NULL, note TEXT NOT NULL);
CREATE INDEX item_address ON item (address, kind);";
const INSERT_RAW: &str = "INSERT INTO raw (dedup, at, body) VALUES (?1, ?2, ?3)";
const INSERT_ITEM: &str = "INSERT INTO item (raw_id, kind, address, note) VALUES (?1, ?2, ?3, ?4)";

/// This process's user + system CPU time, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is valid, and getrusage fills it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn stay_on_one_cpu() {
    // SAFETY: plain libc calls on a zeroed cpu_set_t, as src/main.rs does.
    unsafe {
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        let cpu = libc::sched_getcpu().max(0) as usize;
        libc::CPU_SET(cpu, &mut one);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one);
    }
}

/// The values of statement `s` of message `m` (the same for both ways).
fn item(m: usize, s: usize) -> (String, String) {
    (
        format!("customer{}@example.test", m % 997),
        format!("note {s} of message {m}: a line of text as a row would hold"),
    )
}

/// Messages `from..to` through sqlx, one statement at a time.
async fn by_sqlx(conn: &mut SqliteConnection, from: usize, to: usize, body: &[u8]) {
    for batch in (from..to).step_by(BATCH) {
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .unwrap();
        for m in batch..(batch + BATCH).min(to) {
            let raw_id = sqlx::query(INSERT_RAW)
                .bind(format!("dedup-{m}"))
                .bind(m as i64)
                .bind(body)
                .execute(&mut *conn)
                .await
                .unwrap()
                .last_insert_rowid();
            for s in 1..STATEMENTS {
                let (address, note) = item(m, s);
                sqlx::query(INSERT_ITEM)
                    .bind(raw_id)
                    .bind("kind")
                    .bind(address)
                    .bind(note)
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
        }
        sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
    }
}

/// A prepared statement, finalized on drop.
struct Stmt(*mut ffi::sqlite3_stmt);

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: prepared once by sqlite3_prepare_v2, finalized once here.
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

fn check(db: *mut ffi::sqlite3, rc: c_int, want: c_int) {
    if rc != want {
        // SAFETY: sqlite3_errmsg returns a string SQLite owns.
        let msg = unsafe { std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db)) };
        panic!("sqlite: {rc} {}", msg.to_string_lossy());
    }
}

fn prepare(db: *mut ffi::sqlite3, sql: &str) -> Stmt {
    let sql = CString::new(sql).unwrap();
    let mut stmt = std::ptr::null_mut();
    // SAFETY: db is live and held under sqlx's lock by the caller.
    let rc =
        unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut()) };
    check(db, rc, ffi::SQLITE_OK);
    Stmt(stmt)
}

fn exec(db: *mut ffi::sqlite3, sql: &str) {
    let sql = CString::new(sql).unwrap();
    // SAFETY: as in `prepare`.
    let rc = unsafe {
        ffi::sqlite3_exec(
            db,
            sql.as_ptr(),
            None,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    check(db, rc, ffi::SQLITE_OK);
}

fn bind_text(stmt: &Stmt, i: c_int, text: &str) {
    // SAFETY: SQLITE_TRANSIENT makes SQLite copy the text, as sqlx's
    // binding does; the statement is live.
    unsafe {
        ffi::sqlite3_bind_text(
            stmt.0,
            i,
            text.as_ptr().cast(),
            text.len() as c_int,
            ffi::SQLITE_TRANSIENT(),
        );
    }
}

/// Messages `from..to` with the connection locked once per transaction.
async fn by_one_handoff(conn: &mut SqliteConnection, from: usize, to: usize, body: &[u8]) {
    for batch in (from..to).step_by(BATCH) {
        let mut locked = conn.lock_handle().await.unwrap();
        let db = locked.as_raw_handle().as_ptr();
        exec(db, "BEGIN IMMEDIATE");
        let (raw, item_stmt) = (prepare(db, INSERT_RAW), prepare(db, INSERT_ITEM));
        for m in batch..(batch + BATCH).min(to) {
            // SAFETY: the statements are live, the connection locked.
            unsafe {
                ffi::sqlite3_reset(raw.0);
                bind_text(&raw, 1, &format!("dedup-{m}"));
                ffi::sqlite3_bind_int64(raw.0, 2, m as i64);
                ffi::sqlite3_bind_blob(
                    raw.0,
                    3,
                    body.as_ptr().cast(),
                    body.len() as c_int,
                    ffi::SQLITE_TRANSIENT(),
                );
                check(db, ffi::sqlite3_step(raw.0), ffi::SQLITE_DONE);
            }
            // SAFETY: the connection is live and locked.
            let raw_id = unsafe { ffi::sqlite3_last_insert_rowid(db) };
            for s in 1..STATEMENTS {
                let (address, note) = item(m, s);
                // SAFETY: as above.
                unsafe {
                    ffi::sqlite3_reset(item_stmt.0);
                    ffi::sqlite3_bind_int64(item_stmt.0, 1, raw_id);
                    bind_text(&item_stmt, 2, "kind");
                    bind_text(&item_stmt, 3, &address);
                    bind_text(&item_stmt, 4, &note);
                    check(db, ffi::sqlite3_step(item_stmt.0), ffi::SQLITE_DONE);
                }
            }
        }
        drop((raw, item_stmt));
        exec(db, "COMMIT");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let Some(args) = bench_args("handoff") else {
        return;
    };
    let messages = arg(&args, "--messages", 5000usize);
    let rounds = arg(&args, "--rounds", 5usize);
    stay_on_one_cpu();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(std::env::var("TMPDIR").unwrap_or("/tmp".into())).unwrap();
        let body = vec![b'x'; 3000];
        let statements = (messages * STATEMENTS) as f64;
        let (mut rates, mut cpus) = ([vec![], vec![]], [vec![], vec![]]);
        for round in 0..rounds {
            for way in [0, 1] {
                let path = dir.path().join(format!("r{round}w{way}.db"));
                let opts = Store::sqlite_options(&format!("sqlite://{}", path.display())).unwrap();
                let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::raw_sql(SCHEMA).execute(&mut conn).await.unwrap();
                let (cpu, t) = (cpu_seconds(), Instant::now());
                if way == 0 {
                    by_sqlx(&mut conn, 0, messages, &body).await;
                } else {
                    by_one_handoff(&mut conn, 0, messages, &body).await;
                }
                let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
                let n: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM raw) + (SELECT COUNT(*) FROM item)")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(n as usize, messages * STATEMENTS, "every row written");
                conn.close().await.unwrap();
                let name = ["sqlx", "one hand-off"][way];
                println!(
                    "round {round} {name:13} {:8.0} statements/s, {:5.2} us CPU a statement",
                    statements / secs,
                    cpu / statements * 1e6
                );
                rates[way].push(statements / secs);
                cpus[way].push(cpu / statements * 1e6);
            }
        }
        let (r0, r1) = (median(rates[0].clone()), median(rates[1].clone()));
        let (c0, c1) = (median(cpus[0].clone()), median(cpus[1].clone()));
        println!(
            "handoff: {messages} messages x {STATEMENTS} statements, {BATCH} a transaction, medians of {rounds}: \
             sqlx {r0:.0}/s ({c0:.2} us CPU each) vs one hand-off per transaction {r1:.0}/s ({c1:.2} us): \
             {:.2}x the rate, {:.2}x the CPU",
            r1 / r0,
            c1 / c0
        );
    });
}
