//! `cargo bench --bench backlog` (run by `scripts/bench.sh`, which starts
//! the servers first): Guichet against the limits of its own mail servers,
//! every figure printed with its ratio, in one run.
//!
//! 1. Backlog drain: N messages waiting in a real Dovecot mailbox;
//!    `guichet run --once` (the release binary, SQLite) against a bare
//!    client that only fetches the same messages and submits the same
//!    outgoing mail to the same Postfix.
//! 2. Pipeline alone: `ingest` in process against mail-parser's bare parse.
//! 3. Latency with IDLE: from Dovecot's push to the acknowledgement handed
//!    to SMTP, for messages delivered one at a time.
//! 4. Memory: peak RSS of the drain, and of one 25 MB attachment.
//! 5. Growth: per-message ingest cost with 1k, 10k, 100k stored tickets.
//! 6. PostgreSQL: ingest alone and the drain beside SQLite's; 1, 2 and 3
//!    daemons on one database and one mailbox (each message fetched once,
//!    no ticket or mail twice).
//! 7. Realistic mail (`backlog/realistic.rs`, run after 1): the corpus,
//!    each message once (up to `BENCH_N`), with clamd on: `guichet run
//!    --once` ingest alone and the drain with the relay, in MB/s, against
//!    a bare client that fetches the messages and streams the files
//!    Guichet scanned to the same clamd with INSTREAM (every file part:
//!    reported); an EICAR message must be refused by both. Skipped when
//!    the corpus is absent.
//! 8. Big backlog (run after 7): `BENCH_BIG_N` messages (100,000 by
//!    default) in one mailbox, ingested alone by one `run --once`: time,
//!    peak RSS, per-message cost over the first and the last tenth.
//! 0. Peer (run first, `backlog/peer.rs`): django-helpdesk's `get_email`
//!    and `guichet run --once` on the same `BENCH_PEER_N` messages (default
//!    500); its measured rate is the one the backlog figures compare to.
//!
//! Not a test: nothing here runs under `cargo test`. Environment:
//! `BENCH_N` (backlog size, default 10000), `BENCH_RIG` (the rig's
//! directory, default /dev/shm/guichet-bench), `BENCH_LATENCY_N` (default
//! 100), `BENCH_GROWTH` (default 1000,10000,100000), `BENCH_BIG_N` (the big
//! backlog, default 100000), `BENCH_ONLY` (comma list of peer,backlog,
//! realistic,big,pipeline,latency,memory,growth,postgres).

#[path = "backlog/mails.rs"]
mod mails;
#[path = "backlog/peer.rs"]
mod peer;
#[path = "backlog/realistic.rs"]
mod realistic;
#[path = "backlog/wire.rs"]
mod wire;

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use guichet::mail::templates::Templates;
use guichet::store::Store;
use guichet::workers::Ctx;
use guichet::workers::ingest::{BatchItem, Options, Outcome, Source, ingest, ingest_batch};
use mails::{BenchMail, Kind};
use wire::{Imap, Submission, dot_stuffed};

/// django-helpdesk 2.6 `get_email`, acknowledgements on (issue 7): only a
/// fallback, when the `peer` phase could not measure it in this run.
const PEER_MSG_PER_S: f64 = 35.0;

struct Config {
    n: usize,
    latency_n: usize,
    big_n: usize,
    growth: Vec<usize>,
    /// Rounds of the relay's capacity per connection count (bare, then
    /// Guichet, alternating); the medians are compared.
    relay_rounds: usize,
    only: Option<Vec<String>>,
}

impl Config {
    fn from_env() -> Config {
        let num = |k: &str, d: usize| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or(d)
        };
        Config {
            n: num("BENCH_N", 10_000),
            latency_n: num("BENCH_LATENCY_N", 100),
            big_n: num("BENCH_BIG_N", 100_000),
            growth: std::env::var("BENCH_GROWTH")
                .ok()
                .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![1_000, 10_000, 100_000]),
            relay_rounds: num("BENCH_RELAY_ROUNDS", 3).max(1),
            only: std::env::var("BENCH_ONLY")
                .ok()
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect()),
        }
    }
    fn wants(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|p| p == part))
    }
}

/// The servers, from the env file that `mailrig.sh start` wrote.
struct Rig {
    dir: PathBuf,
    vars: HashMap<String, String>,
    host: String,
    imap_port: u16,
    lmtp_port: u16,
    smtp_port: u16,
    password: String,
}

impl Rig {
    fn load() -> Result<Rig> {
        let dir = PathBuf::from(
            std::env::var("BENCH_RIG").unwrap_or_else(|_| "/dev/shm/guichet-bench".into()),
        );
        let text = std::fs::read_to_string(dir.join("env")).with_context(|| {
            format!(
                "no rig at {}: run scripts/bench.sh, which starts one",
                dir.display()
            )
        })?;
        let vars: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .with_context(|| format!("{k} missing from the rig's env"))
        };
        Ok(Rig {
            host: get("IMAP_HOST")?,
            imap_port: get("IMAP_PORT")?.parse()?,
            lmtp_port: get("LMTP_PORT")?.parse()?,
            smtp_port: get("SMTP_PORT")?.parse()?,
            password: get("MAIL_PASSWORD")?,
            vars,
            dir,
        })
    }

    fn postfix_queue_empty(&self) -> Result<bool> {
        let conf = self
            .vars
            .get("POSTFIX_CONFIG_DIR")
            .context("POSTFIX_CONFIG_DIR missing")?;
        let out = Command::new("postqueue")
            .args(["-c", conf, "-p"])
            .output()
            .context("cannot run postqueue")?;
        Ok(String::from_utf8_lossy(&out.stdout).contains("Mail queue is empty"))
    }

    /// Waits until Postfix has delivered everything it accepted, so that
    /// one phase's background deliveries do not load the next one.
    fn wait_postfix_idle(&self) -> Result<Duration> {
        let t = Instant::now();
        while !self.postfix_queue_empty()? {
            if t.elapsed() > Duration::from_secs(600) {
                bail!("Postfix queue not empty after 10 minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(t.elapsed())
    }

    async fn count(&self, user: &str) -> Result<u32> {
        let mut imap = Imap::login(&self.host, self.imap_port, user, &self.password).await?;
        let n = imap.select("INBOX").await?;
        let _ = imap.command("LOGOUT").await;
        Ok(n)
    }
}

/// A help desk's settings file and SQLite database in a temp dir.
struct Desk {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Desk {
    fn new(rig: &Rig, support: &str, agent: &str, attachments: &str) -> Result<Desk> {
        Self::with_smtp(rig, support, agent, attachments, rig.smtp_port, None)
    }

    /// `connections`: `smtp.connections`, or the default when `None`.
    fn with_smtp(
        rig: &Rig,
        support: &str,
        agent: &str,
        attachments: &str,
        smtp_port: u16,
        connections: Option<usize>,
    ) -> Result<Desk> {
        let dir = tempfile::Builder::new()
            .prefix("guichet-bench-")
            .tempdir()?;
        let config = dir.path().join("guichet.toml");
        std::fs::write(
            &config,
            format!(
                r#"[helpdesk]
secret = "bench-secret-0123456789abcdef"

[attachments]
storage_dir = "files"
{attachments}

[imap]
host = "{host}"
port = {imap}
tls = "none"
username = "{support}"
password = "{password}"
poll_seconds = 60
idle = true

[smtp]
host = "{host}"
port = {smtp}
tls = "none"
from = "Bench Support <{support}>"
{connections}

[database]
url = "sqlite://guichet.db"

[[departments]]
name = "Support"
address = "{support}"
agents = ["{agent}"]
"#,
                host = rig.host,
                imap = rig.imap_port,
                smtp = smtp_port,
                password = rig.password,
                connections = connections
                    .map(|k| format!("connections = {k}"))
                    .unwrap_or_default(),
            ),
        )?;
        Ok(Desk { dir, config })
    }

    /// A copy of this desk (settings, database, files) whose settings
    /// are edited by `edit`.
    fn copy(&self, edit: impl Fn(String) -> String) -> Result<Desk> {
        let dir = tempfile::Builder::new()
            .prefix("guichet-bench-")
            .tempdir()?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", self.dir.path().display()))
            .arg(dir.path())
            .status()?;
        if !status.success() {
            bail!("cannot copy {}", self.dir.path().display());
        }
        let config = dir.path().join("guichet.toml");
        std::fs::write(&config, edit(std::fs::read_to_string(&config)?))?;
        Ok(Desk { dir, config })
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("guichet.db")
    }
}

fn guichet_bin() -> &'static str {
    env!("CARGO_BIN_EXE_guichet")
}

/// One run of the real binary: wall time, peak RSS, output.
struct BinRun {
    wall: Duration,
    peak_rss_kb: u64,
    /// User + system CPU time, from the last sample of /proc/PID/stat.
    cpu: Duration,
    stdout: String,
}

/// utime + stime of a live process.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the fields after the command name, which is in parentheses
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `guichet --config … args`, sampling VmHWM (the kernel's own
/// high-water mark, so a sample only needs to be late, not lucky) until
/// it exits.
fn run_guichet(desk: &Desk, args: &[&str]) -> Result<BinRun> {
    let log = std::fs::File::create(desk.dir.path().join("guichet.log"))?;
    let t = Instant::now();
    let mut child = Command::new(guichet_bin())
        .arg("--config")
        .arg(&desk.config)
        .args(args)
        .env_remove("GUICHET_CONFIG")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("cannot start guichet")?;
    let pid = child.id();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let sampler = std::thread::spawn(move || {
        let (mut peak, mut cpu) = (0, Duration::ZERO);
        loop {
            if let Some(kb) = vm_hwm_kb(pid) {
                peak = peak.max(kb);
            }
            if let Some(c) = cpu_time(pid) {
                cpu = cpu.max(c);
            }
            if stop_rx.recv_timeout(Duration::from_millis(2)).is_ok() {
                return (peak, cpu);
            }
        }
    });
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout)?;
    }
    // the last samples: the process is still there until it is reaped
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let wall = t.elapsed();
    let _ = stop_tx.send(());
    let (peak_rss_kb, cpu) = sampler.join().unwrap_or_default();
    if !status.success() {
        let log = std::fs::read_to_string(desk.dir.path().join("guichet.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        bail!(
            "guichet {args:?} failed ({status}):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(BinRun {
        wall,
        peak_rss_kb,
        cpu,
        stdout,
    })
}

/// Busy and total jiffies of the whole machine (/proc/stat).
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// How busy the machine's CPUs were since `start` (all processes).
fn busy_since(start: (u64, u64)) -> String {
    let now = machine_cpu();
    let (busy, total) = (now.0 - start.0, now.1 - start.1);
    format!(
        "machine CPUs {:.0}% busy",
        100.0 * busy as f64 / total.max(1) as f64
    )
}

/// The middle value (nearest rank, as [`percentile`]).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(values, 50.0)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// The big backlog (issue 17: 100,000 messages in one run): one mailbox
/// seeded over four LMTP connections, then `guichet run --once` with the
/// relay unreachable (ingest alone): its time, peak RSS, and per-message
/// cost over the first and the last tenth of the messages.
async fn big_backlog(
    cfg: &Config,
    rig: &Rig,
    prefix: &str,
    corpus: &[Vec<u8>],
    sum: &mut Summary,
) -> Result<()> {
    let n = cfg.big_n;
    let support = format!("{prefix}-big@example.test");
    let agent = format!("{prefix}-bigagent@example.test");
    let mails = mails::backlog(n, &support, corpus, &format!("{prefix}big"));
    println!("\n== Big backlog: {n} messages ({})", mix(&mails));
    let t = Instant::now();
    let quarter = mails.len().div_ceil(4).max(1);
    let rcpts = [support.as_str()];
    let seeded =
        futures::future::join_all(mails.chunks(quarter).map(|part| seed(rig, part, &rcpts))).await;
    for s in seeded {
        s?;
    }
    drop(mails);
    let have = rig.count(&support).await?;
    if have as usize != n {
        bail!("{support} holds {have} messages, not {n}");
    }
    println!(
        "   seeded over LMTP (4 connections) in {:.1} s",
        secs(t.elapsed())
    );
    rig.wait_postfix_idle()?;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let desk = Desk::with_smtp(rig, &support, &agent, "", closed_port, None)?;
    let cpu = machine_cpu();
    let run = tokio::task::block_in_place(|| run_guichet(&desk, &["run", "--once"]))?;
    let busy = busy_since(cpu);
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .with_context(|| format!("run --once printed {:?}", run.stdout))?;
    if report["mailbox"]["fetched"].as_u64() != Some(n as u64) {
        bail!("guichet fetched {} of {n}", report["mailbox"]["fetched"]);
    }
    let rss = run.peak_rss_kb as f64 / 1024.0;
    println!(
        "   ingest alone (relay unreachable): {:.1} s = {:.0} msg/s, {:.1} s of CPU, peak RSS {rss:.1} MB; {busy}",
        secs(run.wall),
        n as f64 / secs(run.wall),
        secs(run.cpu)
    );
    let Some((start, end, windows)) = per_message_cost(&desk.dir.path().join("guichet.log")) else {
        bail!("no per-message times in the log");
    };
    let growth = end / start;
    sum.add(format!(
        "big backlog     {n} messages ingested alone in {:.1} s ({:.0} msg/s), peak RSS {rss:.1} MB (target < 100 MB) {}; per message {start:.0} us over the first {windows} vs {end:.0} us over the last {windows}: {growth:.2}x (target <= 1.50x) {}",
        secs(run.wall),
        n as f64 / secs(run.wall),
        verdict(rss < 100.0),
        verdict(growth <= 1.5)
    ));
    Ok(())
}

/// Delivers `mails` over one LMTP connection to every one of `rcpts`.
async fn seed(rig: &Rig, mails: &[BenchMail], rcpts: &[&str]) -> Result<Duration> {
    let t = Instant::now();
    let mut lmtp = Submission::lmtp(&rig.host, rig.lmtp_port).await?;
    for m in mails {
        lmtp.send(&m.sender, rcpts, &dot_stuffed(&m.raw)).await?;
    }
    lmtp.quit().await?;
    Ok(t.elapsed())
}

/// The bare fetch baseline: LOGIN, SELECT, UID SEARCH, then UID FETCH
/// BODY.PEEK[] in batches of 200 (Guichet's batch size). Returns
/// (messages, bytes).
async fn bare_fetch(rig: &Rig, user: &str) -> Result<(usize, usize)> {
    let mut imap = Imap::login(&rig.host, rig.imap_port, user, &rig.password).await?;
    imap.select("INBOX").await?;
    let uids = imap.uid_search_all().await?;
    let (mut count, mut bytes) = (0, 0);
    for chunk in uids.chunks(200) {
        for body in imap.fetch_bodies(chunk).await? {
            count += 1;
            bytes += body.len();
            std::hint::black_box(&body);
        }
    }
    let _ = imap.command("LOGOUT").await;
    Ok((count, bytes))
}

struct Outgoing {
    from: String,
    rcpts: Vec<String>,
    wire: Vec<u8>,
}

/// What Guichet queued, read back from its outbox, ready for the wire.
async fn outbox_of(db: &Path) -> Result<Vec<Outgoing>> {
    let store = Store::connect(&format!("sqlite://{}", db.display())).await?;
    let Store::Sqlite(pool) = &store else {
        bail!("not SQLite")
    };
    let rows: Vec<(String, String, Vec<u8>)> =
        sqlx::query_as("SELECT o.envelope_from, o.recipients, COALESCE(b.bytes, o.raw) FROM outbox_mail o LEFT JOIN outbox_mail_blobs b ON b.id = o.id ORDER BY o.id")
            .fetch_all(pool)
            .await?;
    store.close().await;
    Ok(rows
        .into_iter()
        .map(|(from, rcpts, raw)| Outgoing {
            from,
            rcpts: rcpts.split(',').map(str::to_string).collect(),
            // lettre strips one final line break and adds CRLF . CRLF
            wire: dot_stuffed(&raw),
        })
        .collect())
}

/// The bare submit baseline: everything over `k` SMTP connections at
/// once, which take the mails in turn (mail i on connection i mod k).
async fn bare_submit(rig: &Rig, mails: &[Outgoing], k: usize) -> Result<Duration> {
    let t = Instant::now();
    let sessions = (0..k).map(|c| async move {
        let mut smtp = Submission::smtp(&rig.host, rig.smtp_port).await?;
        for m in mails.iter().skip(c).step_by(k) {
            let rcpts: Vec<&str> = m.rcpts.iter().map(String::as_str).collect();
            smtp.send(&m.from, &rcpts, &m.wire).await?;
        }
        smtp.quit().await
    });
    for done in futures::future::join_all(sessions).await {
        done?;
    }
    Ok(t.elapsed())
}

/// The connection counts the relay's capacity is measured with.
const CONNECTIONS: [usize; 4] = [1, 2, 4, 8];

fn mix(mails: &[BenchMail]) -> String {
    let count = |k| mails.iter().filter(|m| m.kind == k).count();
    let with_files = mails
        .iter()
        .filter(|m| m.kind != Kind::Corpus && has_attachment(&m.raw))
        .count();
    let bytes: usize = mails.iter().map(|m| m.raw.len()).sum();
    format!(
        "{} corpus, {} new questions, {} replies, {} with a file; {:.1} MB",
        count(Kind::Corpus),
        count(Kind::New),
        count(Kind::Reply),
        with_files,
        bytes as f64 / 1e6
    )
}

/// Figures kept for the summary.
#[derive(Default)]
struct Summary {
    lines: Vec<String>,
}

impl Summary {
    fn add(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }
}

async fn backlog_drain(
    cfg: &Config,
    rig: &Rig,
    prefix: &str,
    backlog: &[BenchMail],
    peer_rate: &peer::PeerRate,
    sum: &mut Summary,
) -> Result<SqliteFigures> {
    let n = cfg.n;
    let support = format!("{prefix}-desk@example.test");
    let bare = format!("{prefix}-bare@example.test");
    let agent = format!("{prefix}-agent@example.test");
    println!("\n== 1. Backlog drain: {n} messages ({})", mix(backlog));

    let split = format!("{prefix}-split@example.test");
    let seeded = seed(rig, backlog, &[&support, &bare, &split]).await?;
    println!(
        "   seeded three identical mailboxes over LMTP in {:.1} s ({:.0} msg/s)",
        secs(seeded),
        n as f64 / secs(seeded)
    );
    for user in [&support, &bare, &split] {
        let have = rig.count(user).await?;
        if have as usize != n {
            bail!("{user} holds {have} messages, not {n}");
        }
    }
    rig.wait_postfix_idle()?;

    let cpu = machine_cpu();
    let t = Instant::now();
    let (fetched, bytes) = bare_fetch(rig, &bare).await?;
    let fetch = t.elapsed();
    let fetch_busy = busy_since(cpu);
    if fetched != n {
        bail!("bare fetch got {fetched} of {n} messages");
    }
    println!(
        "   bare fetch:   {fetched} messages, {:.1} MB in {:.3} s = {:.0} msg/s; {fetch_busy}",
        bytes as f64 / 1e6,
        secs(fetch),
        n as f64 / secs(fetch)
    );

    // ingest alone (SMTP unreachable, so nothing is sent): its outbox is
    // what every submit below sends, bare and by Guichet
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let split_agent = format!("{prefix}-splitagent@example.test");
    let desk2 = Desk::with_smtp(rig, &split, &split_agent, "", closed_port, None)?;
    let cpu = machine_cpu();
    let alone = tokio::task::block_in_place(|| run_guichet(&desk2, &["run", "--once"]))?;
    let alone_busy = busy_since(cpu);
    let queued = outbox_of(&desk2.db()).await?;
    println!(
        "   ingest alone (relay unreachable): {:.2} s = {:.0} msg/s, {:.2} s of CPU; {alone_busy}; {} mails queued",
        secs(alone.wall),
        n as f64 / secs(alone.wall),
        secs(alone.cpu),
        queued.len()
    );

    if let Some((start, end, windows)) = per_message_cost(&desk2.dir.path().join("guichet.log")) {
        let growth = end / start;
        sum.add(format!(
            "backlog cost    ingest alone of {n}: {:.2} s, peak RSS {:.1} MB; per message {start:.0} us over the first {windows} vs {end:.0} us over the last {windows}: {growth:.2}x (target <= 1.50x) {}",
            secs(alone.wall),
            alone.peak_rss_kb as f64 / 1024.0,
            verdict(growth <= 1.5)
        ));
    }

    // the relay's capacity: the same outbox over 1, 2, 4, 8 connections,
    // bare, then by Guichet (delivery alone: a copy of that store, run
    // once more after the retry delay, `smtp.connections` = k), in
    // `relay_rounds` alternating rounds: one short drain each moved by
    // ±20 % from run to run on this machine, so the medians are compared
    let later = (Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
    let mut capacity: Vec<(usize, f64, f64, f64)> = Vec::new();
    for k in CONNECTIONS {
        let (mut bare_rates, mut rates, mut phase_rates) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=cfg.relay_rounds {
            rig.wait_postfix_idle()?;
            let cpu = machine_cpu();
            let submit = bare_submit(rig, &queued, k).await?;
            let submit_busy = busy_since(cpu);
            rig.wait_postfix_idle()?;
            let copy = desk2.copy(|text| {
                text.replace(
                    &format!("port = {closed_port}"),
                    &format!("port = {}\nconnections = {k}", rig.smtp_port),
                )
            })?;
            let cpu = machine_cpu();
            let run = tokio::task::block_in_place(|| {
                run_guichet(&copy, &["run", "--once", "--now", &later])
            })?;
            let run_busy = busy_since(cpu);
            let r: serde_json::Value = serde_json::from_str(run.stdout.trim())?;
            let sent = r["mail"]["sent"].as_u64().unwrap_or(0) as usize;
            if sent != queued.len() {
                bail!(
                    "{k} connections: guichet sent {sent} of {} mails",
                    queued.len()
                );
            }
            let bare_rate = queued.len() as f64 / secs(submit);
            let rate = sent as f64 / secs(run.wall);
            // the run's own delivery phase: first claim to last mail
            // handed over, without the process start and the IMAP pass
            let phase = r["timings"]["delivery_ms"].as_f64().unwrap_or(0.0) / 1000.0;
            let phase_rate = sent as f64 / phase.max(1e-3);
            println!(
                "   {k} connection(s), round {round}: bare submit {:.2} s = {bare_rate:.0} msg/s ({submit_busy}); guichet delivery alone {:.2} s = {rate:.0} msg/s (its delivery phase {phase:.2} s = {phase_rate:.0} msg/s), {:.2} s of CPU ({run_busy})",
                secs(submit),
                secs(run.wall),
                secs(run.cpu),
            );
            bare_rates.push(bare_rate);
            rates.push(rate);
            phase_rates.push(phase_rate);
        }
        capacity.push((
            k,
            median(&mut bare_rates),
            median(&mut rates),
            median(&mut phase_rates),
        ));
    }
    rig.wait_postfix_idle()?;
    let &(best_k, best_bare, _, _) = capacity
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .context("no capacity measured")?;
    for &(k, bare_rate, rate, phase_rate) in &capacity {
        let ratio = rate / bare_rate;
        sum.add(format!(
            "relay {k} conn     guichet delivery alone {rate:.0} msg/s vs bare submit {bare_rate:.0} msg/s over {k} (medians of {} rounds): {ratio:.2}x (target >= 0.90x) {}{}",
            cfg.relay_rounds,
            verdict(ratio >= 0.9),
            if k == best_k { "; the relay's best" } else { "" }
        ));
        sum.add(format!(
            "  phase only   its delivery phase (first claim to last mail, without the process start and the IMAP pass) {phase_rate:.0} msg/s: {:.2}x the bare submit (reported)",
            phase_rate / bare_rate
        ));
    }
    let rate_alone = n as f64 / secs(alone.wall);
    sum.add(format!(
        "ingest alone    {rate_alone:.0} msg/s = {:.1}x {} (target >= 100x) {}",
        rate_alone / peer_rate.msg_per_s,
        peer_rate.label(),
        verdict(rate_alone / peer_rate.msg_per_s >= 100.0)
    ));

    // the whole drain, overlapped, with the connections that got the most
    // through, against the bare client with as many
    let desk = Desk::with_smtp(rig, &support, &agent, "", rig.smtp_port, Some(best_k))?;
    let cpu = machine_cpu();
    let run = tokio::task::block_in_place(|| run_guichet(&desk, &["run", "--once"]))?;
    let run_busy = busy_since(cpu);
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .with_context(|| format!("run --once printed {:?}", run.stdout))?;
    let drained = rig.wait_postfix_idle()?;
    let sent = report["mail"]["sent"].as_u64().unwrap_or(0) as usize;
    let mb = &report["mailbox"];
    println!(
        "   guichet run --once ({best_k} connections): {:.2} s ({:.2} s of CPU; {run_busy}); mailbox {mb}; mail {}; peak RSS {:.1} MB; Postfix finished delivering {:.1} s later",
        secs(run.wall),
        secs(run.cpu),
        report["mail"],
        run.peak_rss_kb as f64 / 1024.0,
        secs(drained)
    );
    if mb["fetched"].as_u64() != Some(n as u64) || sent != queued.len() {
        bail!(
            "guichet handled {} of {n} messages and sent {sent} of {} mails",
            mb["fetched"],
            queued.len()
        );
    }
    let submit = queued.len() as f64 / best_bare;
    let bare_total = secs(fetch) + submit;
    let total = secs(run.wall);
    let ratio = bare_total / total;
    sum.add(format!(
        "backlog drain   guichet {total:.2} s vs bare client {bare_total:.2} s (fetch {:.2} + submit {submit:.2} over {best_k}): {ratio:.2}x (target >= 0.90x) {}",
        secs(fetch),
        verdict(ratio >= 0.9)
    ));
    let t = &report["timings"];
    let ingest_s = t["ingest_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    let delivery_s = t["delivery_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    sum.add(format!(
        "  ingest half   mailbox -> tickets committed {ingest_s:.2} s ({:.0} msg/s) vs bare fetch {:.3} s: {:.3}x (reported)",
        n as f64 / ingest_s,
        secs(fetch),
        secs(fetch) / ingest_s
    ));
    sum.add(format!(
        "  delivery half outbox -> SMTP {delivery_s:.2} s ({:.0} msg/s) vs bare submit {submit:.2} s: {:.2}x (reported)",
        queued.len() as f64 / delivery_s,
        submit / delivery_s
    ));
    let rate = n as f64 / total;
    let peer_msg_per_s = peer_rate.msg_per_s;
    sum.add(format!(
        "  end to end    {rate:.0} msg/s = {:.1}x {} (reported: the relay bounds it); the bare client itself: {:.0} msg/s = {:.1}x",
        rate / peer_msg_per_s,
        peer_rate.label(),
        n as f64 / bare_total,
        n as f64 / bare_total / peer_msg_per_s
    ));
    let rss_mb = run.peak_rss_kb as f64 / 1024.0;
    sum.add(format!(
        "memory drain    peak RSS {rss_mb:.1} MB (target < 100 MB) {}",
        verdict(rss_mb < 100.0)
    ));
    Ok(SqliteFigures {
        ingest_alone: rate_alone,
        drain: rate,
        connections: best_k,
    })
}

/// Per-message ingest cost at the start and at the end of a run, from
/// the times of its "message stored on its ticket" log lines: the mean
/// gap over the first and the last tenth of them (µs), and how many
/// messages a tenth is.
fn per_message_cost(log: &Path) -> Option<(f64, f64, usize)> {
    let text = std::fs::read_to_string(log).ok()?;
    let times: Vec<DateTime<Utc>> = text
        .lines()
        .filter(|l| l.contains("message stored on its ticket"))
        .filter_map(|l| {
            DateTime::parse_from_rfc3339(l.split_whitespace().next()?)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
        .collect();
    let tenth = times.len() / 10;
    if tenth < 2 {
        return None;
    }
    let gap = |a: DateTime<Utc>, b: DateTime<Utc>| {
        (b - a).num_microseconds().unwrap_or(0) as f64 / (tenth - 1) as f64
    };
    let last = times.len() - 1;
    Some((
        gap(times[0], times[tenth - 1]),
        gap(times[last + 1 - tenth], times[last]),
        tenth,
    ))
}

/// The SQLite figures the PostgreSQL ones are set beside.
#[derive(Clone, Copy)]
struct SqliteFigures {
    /// msg/s
    ingest_alone: f64,
    /// msg/s, end to end
    drain: f64,
    connections: usize,
}

/// A fresh PostgreSQL database on the rig; its URL.
async fn fresh_pg(rig: &Rig, name: &str) -> Result<String> {
    use sqlx::Connection;
    let admin_url = rig
        .vars
        .get("PG_ADMIN_URL")
        .context("PG_ADMIN_URL missing")?;
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        format!("CREATE DATABASE \"{name}\" OWNER helpdesk"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await?;
    }
    let _ = admin.close().await;
    let url = rig
        .vars
        .get("DATABASE_URL")
        .context("DATABASE_URL missing")?;
    let (base, _) = url.rsplit_once('/').context("DATABASE_URL has no name")?;
    Ok(format!("{base}/{name}"))
}

/// Rows of `tickets`, `raw_messages`, `outbox_mail` in a database.
async fn pg_counts(url: &str) -> Result<(i64, i64, i64)> {
    let store = Store::connect(url).await?;
    let Store::Postgres(pool) = &store else {
        bail!("not PostgreSQL")
    };
    let mut counts = [0i64; 3];
    for (c, table) in counts
        .iter_mut()
        .zip(["tickets", "raw_messages", "outbox_mail"])
    {
        *c = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(pool)
            .await?;
    }
    store.close().await;
    Ok((counts[0], counts[1], counts[2]))
}

/// The backlog on PostgreSQL: ingest alone and the whole drain beside
/// SQLite's; then 1, 2 and 3 daemons on one database and one mailbox
/// (ingest alone, the relay unreachable): the total rate, how the
/// messages were split, and no ticket or mail twice.
async fn postgres(
    cfg: &Config,
    rig: &Rig,
    prefix: &str,
    backlog: &[BenchMail],
    sqlite: Option<SqliteFigures>,
    sum: &mut Summary,
) -> Result<()> {
    let n = cfg.n;
    println!(
        "\n== 6. PostgreSQL: {n} messages; ingest alone, drain, then 1, 2, 3 daemons on one mailbox"
    );
    let users: Vec<String> = ["pgalone", "pgdrain", "pgd1", "pgd2", "pgd3"]
        .iter()
        .map(|u| format!("{prefix}-{u}@example.test"))
        .collect();
    let rcpts: Vec<&str> = users.iter().map(String::as_str).collect();
    let seeded = seed(rig, backlog, &rcpts).await?;
    println!(
        "   seeded {} mailboxes in {:.1} s",
        users.len(),
        secs(seeded)
    );
    rig.wait_postfix_idle()?;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let agent = format!("{prefix}-pgagent@example.test");
    let on_pg = |desk: Desk, url: &str| -> Result<Desk> {
        let text = std::fs::read_to_string(&desk.config)?
            .replace("url = \"sqlite://guichet.db\"", &format!("url = \"{url}\""));
        std::fs::write(&desk.config, text)?;
        Ok(desk)
    };

    // ingest alone
    let url = fresh_pg(rig, &format!("{prefix}_alone")).await?;
    let desk = on_pg(
        Desk::with_smtp(rig, &users[0], &agent, "", closed_port, None)?,
        &url,
    )?;
    let alone = tokio::task::block_in_place(|| run_guichet(&desk, &["run", "--once"]))?;
    let alone_rate = n as f64 / secs(alone.wall);
    // the drain, with the connections SQLite's drain used
    let k = sqlite.map_or(guichet::settings::DEFAULT_SMTP_CONNECTIONS, |s| {
        s.connections
    });
    let url = fresh_pg(rig, &format!("{prefix}_drain")).await?;
    let desk = on_pg(
        Desk::with_smtp(rig, &users[1], &agent, "", rig.smtp_port, Some(k))?,
        &url,
    )?;
    let drain = tokio::task::block_in_place(|| run_guichet(&desk, &["run", "--once"]))?;
    rig.wait_postfix_idle()?;
    let drain_rate = n as f64 / secs(drain.wall);
    println!(
        "   ingest alone {:.2} s = {alone_rate:.0} msg/s ({:.2} s of CPU); drain over {k} connections {:.2} s = {drain_rate:.0} msg/s, peak RSS {:.1} MB",
        secs(alone.wall),
        secs(alone.cpu),
        secs(drain.wall),
        drain.peak_rss_kb as f64 / 1024.0
    );
    let beside = |pg: f64, lite: Option<f64>| match lite {
        Some(l) => format!("{:.2}x SQLite's {l:.0} msg/s", pg / l),
        None => "SQLite not measured in this run".to_string(),
    };
    sum.add(format!(
        "postgres        ingest alone {alone_rate:.0} msg/s = {}; drain {drain_rate:.0} msg/s = {} (reported)",
        beside(alone_rate, sqlite.map(|s| s.ingest_alone)),
        beside(drain_rate, sqlite.map(|s| s.drain))
    ));

    // 1, 2, 3 daemons, one database, one mailbox each round
    let mut first: Option<(f64, (i64, i64, i64))> = None;
    for (d, user) in (1..=3).zip(&users[2..]) {
        let url = fresh_pg(rig, &format!("{prefix}_d{d}")).await?;
        let desk = on_pg(
            Desk::with_smtp(rig, user, &agent, "", closed_port, None)?,
            &url,
        )?;
        let desks: Vec<Desk> = (0..d).map(|_| desk.copy(|t| t)).collect::<Result<_>>()?;
        let t = Instant::now();
        let runs: Vec<BinRun> = tokio::task::block_in_place(|| {
            std::thread::scope(|s| {
                let handles: Vec<_> = desks
                    .iter()
                    .map(|desk| s.spawn(move || run_guichet(desk, &["run", "--once"])))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("no panic"))
                    .collect::<Result<Vec<_>>>()
            })
        })?;
        let wall = t.elapsed();
        let fetched: Vec<u64> = runs
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(r.stdout.trim())
                    .map(|v| v["mailbox"]["fetched"].as_u64().unwrap_or(0))
                    .unwrap_or(0)
            })
            .collect();
        let counts = pg_counts(&url).await?;
        let rate = n as f64 / secs(wall);
        println!(
            "   {d} daemon(s): {:.2} s = {rate:.0} msg/s in all; fetched {fetched:?}; tickets, stored mails, queued mails {counts:?}",
            secs(wall)
        );
        let total_fetched: u64 = fetched.iter().sum();
        let (base_rate, base_counts) = *first.get_or_insert((rate, counts));
        let exact = total_fetched == n as u64 && counts == base_counts && counts.1 == n as i64;
        sum.add(format!(
            "postgres {d} dmn  {rate:.0} msg/s in all = {:.2}x one daemon; fetched {fetched:?} (each once: target {n}) {}; tickets/stored/queued {counts:?} vs one daemon's {base_counts:?} {}",
            rate / base_rate,
            verdict(total_fetched == n as u64),
            verdict(exact)
        ));
    }
    Ok(())
}

fn fresh_ctx_settings(dir: &Path, extra_attachments: &str) -> Result<guichet::settings::Settings> {
    let path = dir.join("guichet.toml");
    std::fs::write(
        &path,
        format!(
            r#"[helpdesk]
secret = "bench-secret-0123456789abcdef"
[attachments]
storage_dir = "files"
{extra_attachments}
[imap]
host = "127.0.0.1"
tls = "none"
port = 1
username = "support@example.test"
password = "x"
[smtp]
host = "127.0.0.1"
tls = "none"
port = 1
from = "Support <support@example.test>"
[database]
url = "sqlite://guichet.db"
[[departments]]
name = "Support"
address = "support@example.test"
agents = ["agent@example.test"]
"#
        ),
    )?;
    guichet::settings::load(&path).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn open_store(dir: &Path) -> Result<Store> {
    let store = Store::connect(&format!("sqlite://{}", dir.join("guichet.db").display())).await?;
    store.migrate().await?;
    Ok(store)
}

/// Ingests `mails` in process; the time per message.
async fn ingest_all(
    settings: &guichet::settings::Settings,
    store: &Store,
    templates: &Templates,
    mails: &[Vec<u8>],
    first_uid: u32,
) -> Result<(Duration, HashMap<&'static str, usize>, Vec<Duration>)> {
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    let mut each = Vec::with_capacity(mails.len());
    let t = Instant::now();
    for (i, raw) in mails.iter().enumerate() {
        let one = Instant::now();
        let ctx = Ctx {
            settings,
            store,
            templates,
            now: Utc::now(),
        };
        let source = Source {
            mailbox: Some("bench".into()),
            uid: Some(first_uid + i as u32),
            uid_validity: Some(1),
            arrived_at: None,
        };
        let (outcome, _) = ingest(&ctx, raw, &source, Options::default()).await?;
        *outcomes
            .entry(match outcome {
                Outcome::AlreadySeen => "already seen",
                Outcome::Ticket { created: true, .. } => "new ticket",
                Outcome::Ticket { .. } => "appended",
                Outcome::Unplaced { .. } => "unplaced",
            })
            .or_default() += 1;
        each.push(one.elapsed());
    }
    Ok((t.elapsed(), outcomes, each))
}

async fn pipeline(backlog: &[BenchMail], sum: &mut Summary) -> Result<()> {
    let n = backlog.len();
    println!("\n== 2. Pipeline alone: the same {n} messages, in memory, in process");
    let raws: Vec<Vec<u8>> = backlog.iter().map(|m| dot_free(&m.raw)).collect();
    // bare parse: the best of three passes
    let mut parse = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for raw in &raws {
            let msg = mail_parser::MessageParser::default().parse(raw.as_slice());
            std::hint::black_box(msg.map(|m| m.parts.len()));
        }
        parse = parse.min(t.elapsed());
    }
    let dir = tempfile::Builder::new()
        .prefix("guichet-bench-")
        .tempdir()?;
    let settings = fresh_ctx_settings(dir.path(), "")?;
    let store = open_store(dir.path()).await?;
    let templates = Templates::load(None)?;
    let (took, outcomes, each) = ingest_all(&settings, &store, &templates, &raws, 1).await?;
    store.close().await;
    let rate = n as f64 / secs(took);
    let parse_rate = n as f64 / secs(parse);
    let with_file = |yes: bool| {
        let v: Vec<f64> = raws
            .iter()
            .zip(&each)
            .filter(|(r, _)| has_attachment(r) == yes)
            .map(|(_, d)| secs(*d) * 1e6)
            .collect();
        (v.len(), v.iter().sum::<f64>() / v.len().max(1) as f64)
    };
    let ((nf, uf), (nn, un)) = (with_file(true), with_file(false));
    println!(
        "   outcomes: {outcomes:?}; {nf} messages with an attachment: {uf:.0} us each, {nn} without: {un:.0} us each"
    );
    sum.add(format!(
        "pipeline        ingest {rate:.0} msg/s ({:.0} us/msg) vs mail-parser bare parse {parse_rate:.0} msg/s ({:.1} us/msg): {:.3}x",
        secs(took) * 1e6 / n as f64,
        secs(parse) * 1e6 / n as f64,
        rate / parse_rate
    ));

    // the same, in transactions of 50 as `run --once` does
    let dir = tempfile::Builder::new()
        .prefix("guichet-bench-")
        .tempdir()?;
    let settings = fresh_ctx_settings(dir.path(), "")?;
    let store = open_store(dir.path()).await?;
    let t = Instant::now();
    for (b, batch) in raws.chunks(50).enumerate() {
        let items: Vec<BatchItem<'_>> = batch
            .iter()
            .enumerate()
            .map(|(i, raw)| BatchItem {
                raw,
                source: Source {
                    mailbox: Some("bench".into()),
                    uid: Some((b * 50 + i + 1) as u32),
                    uid_validity: Some(1),
                    arrived_at: None,
                },
            })
            .collect();
        let ctx = Ctx {
            settings: &settings,
            store: &store,
            templates: &templates,
            now: Utc::now(),
        };
        ingest_batch(&ctx, &items).await?;
    }
    let batched = t.elapsed();
    store.close().await;
    let rate = n as f64 / secs(batched);
    sum.add(format!(
        "  batched       ingest_batch (50 per transaction) {rate:.0} msg/s ({:.0} us/msg): {:.3}x the bare parse",
        secs(batched) * 1e6 / n as f64,
        rate / parse_rate
    ));
    Ok(())
}

fn has_attachment(raw: &[u8]) -> bool {
    let needle = b"Content-Disposition: attachment";
    raw.windows(needle.len()).any(|w| w == needle)
}

/// The message as Dovecot stores it: CRLF line endings.
fn dot_free(raw: &[u8]) -> Vec<u8> {
    let mut w = dot_stuffed(raw);
    w.truncate(w.len() - 3);
    // undo the dot-stuffing: ".." at a line start
    let mut out = Vec::with_capacity(w.len());
    let mut start = true;
    let mut i = 0;
    while i < w.len() {
        if start && w[i] == b'.' && w.get(i + 1) == Some(&b'.') {
            i += 1;
        }
        out.push(w[i]);
        start = w[i] == b'\n';
        i += 1;
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A running `guichet run` whose JSON log is read line by line.
struct Daemon {
    child: std::process::Child,
    acks: mpsc::Receiver<(i64, DateTime<Utc>)>,
    /// When the daemon's own IDLE read the server's push (its debug log).
    pushes: mpsc::Receiver<DateTime<Utc>>,
    ready: mpsc::Receiver<()>,
}

fn start_daemon(desk: &Desk) -> Result<Daemon> {
    let mut child = Command::new(guichet_bin())
        .arg("--config")
        .arg(&desk.config)
        .args(["--log-format", "json", "run"])
        .env_remove("GUICHET_CONFIG")
        .env("GUICHET_LOG", "info,guichet::adapters::imap=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().expect("piped");
    let (ack_tx, acks) = mpsc::channel();
    let (push_tx, pushes) = mpsc::channel();
    let (ready_tx, ready) = mpsc::channel();
    let log_path = desk.dir.path().join("daemon.log");
    std::thread::spawn(move || {
        let mut log = std::fs::File::create(log_path).ok();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &v["fields"];
            let ts = v["timestamp"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            match fields["message"].as_str() {
                Some("mailbox connected") => {
                    let _ = ready_tx.send(());
                }
                Some("IDLE: the server announced new mail") => {
                    if let Some(ts) = ts {
                        let _ = push_tx.send(ts);
                    }
                }
                Some("mail sent") if fields["kind"] == "acknowledgement" => {
                    let ticket = fields["ticket"]
                        .as_str()
                        .map(|s| s.chars().filter(char::is_ascii_digit).collect::<String>())
                        .and_then(|s| s.parse().ok())
                        .or_else(|| fields["ticket"].as_i64())
                        .unwrap_or(-1);
                    if let Some(ts) = ts {
                        let _ = ack_tx.send((ticket, ts));
                    }
                }
                _ => {}
            }
        }
    });
    Ok(Daemon {
        child,
        acks,
        pushes,
        ready,
    })
}

impl Daemon {
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn latency(cfg: &Config, rig: &Rig, prefix: &str, sum: &mut Summary) -> Result<()> {
    let m = cfg.latency_n;
    println!("\n== 3. Latency with IDLE: {m} messages delivered one at a time");
    let support = format!("{prefix}-lat@example.test");
    let agent = format!("{prefix}-latagent@example.test");
    let desk = Desk::new(rig, &support, &agent, "")?;
    // the mailbox exists before anyone selects it
    let mut lmtp = Submission::lmtp(&rig.host, rig.lmtp_port).await?;
    let mut rng = mails::Rng::new(7);
    let first = latency_mail(&mut rng, &support, prefix, 0);
    lmtp.send(&first.sender, &[&support], &dot_stuffed(&first.raw))
        .await?;

    let daemon = start_daemon(&desk)?;
    daemon
        .ready
        .recv_timeout(Duration::from_secs(30))
        .context("the daemon did not connect to its mailbox")?;
    // the first message is drained by the daemon's first pass
    let (t0, _) = daemon
        .acks
        .recv_timeout(Duration::from_secs(30))
        .context("no acknowledgement of the first message")?;
    if t0 != 1 {
        bail!("first acknowledgement was for ticket {t0}");
    }

    // our own IDLE on the same mailbox: the time of Dovecot's push
    let mut watcher = Imap::login(&rig.host, rig.imap_port, &support, &rig.password).await?;
    watcher.select("INBOX").await?;
    watcher.idle().await?;
    let (push_tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        while let Ok(resp) = watcher.response().await {
            if resp.text.ends_with(" EXISTS") {
                let _ = push_tx.send(Utc::now());
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;

    let mut latencies = Vec::with_capacity(m);
    let mut push_delays = Vec::with_capacity(m);
    let mut push_offsets = Vec::with_capacity(m);
    let ms = |d: chrono::Duration| d.num_microseconds().unwrap_or(0) as f64 / 1000.0;
    for i in 1..=m {
        while daemon.pushes.try_recv().is_ok() {}
        let mail = latency_mail(&mut rng, &support, prefix, i);
        lmtp.send(&mail.sender, &[&support], &dot_stuffed(&mail.raw))
            .await?;
        let delivered = Utc::now();
        let watched = tokio::time::timeout(Duration::from_secs(10), pushes.recv())
            .await
            .context("no EXISTS push within 10 s")?
            .context("IDLE watcher ended")?;
        let (ticket, acked) =
            tokio::task::block_in_place(|| daemon.acks.recv_timeout(Duration::from_secs(10)))
                .with_context(|| format!("no acknowledgement for message {i} within 10 s"))?;
        if ticket != i as i64 + 1 {
            bail!("acknowledgement for ticket {ticket}, expected {}", i + 1);
        }
        let pushed = daemon
            .pushes
            .try_recv()
            .context("the daemon logged no push (IDLE not used?)")?;
        latencies.push(ms(acked - pushed));
        push_offsets.push(ms(pushed - watched));
        push_delays.push(ms(watched - delivered));
        // let the daemon go back to IDLE
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();
    lmtp.quit().await?;
    daemon.stop();
    for v in [&mut latencies, &mut push_delays, &mut push_offsets] {
        v.sort_by(f64::total_cmp);
    }
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    println!(
        "   Dovecot pushed {:.0} ms (median) after the LMTP delivery; the daemon's IDLE got it {:+.1} ms (median) from ours; push -> ack handed to SMTP: min {:.1} ms, max {:.1} ms",
        percentile(&push_delays, 50.0),
        percentile(&push_offsets, 50.0),
        latencies.first().copied().unwrap_or(f64::NAN),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    sum.add(format!(
        "latency (IDLE)  push -> ticket committed + ack handed to SMTP over {m} messages: median {p50:.1} ms (target < 50) {}, p99 {p99:.1} ms (target < 200) {}",
        verdict(p50 < 50.0),
        verdict(p99 < 200.0)
    ));
    Ok(())
}

fn latency_mail(rng: &mut mails::Rng, support: &str, prefix: &str, i: usize) -> BenchMail {
    let customer = mails::Customer {
        address: format!("lat{i}@customers.invalid"),
        name: format!("Latency {i}"),
    };
    let text = format!(
        "{}\r\n\r\nThanks,\r\n{}\r\n",
        ["Hello, the export fails again.", "Where is my parcel?"][rng.below(2)],
        customer.name
    );
    BenchMail {
        raw: mails::customer_mail(
            &customer,
            support,
            &format!("Latency probe {i}"),
            &format!("lat-{prefix}-{i}@customers.invalid"),
            None,
            &text,
            false,
            None,
            "Wed, 25 Nov 2026 10:00:00 +0000",
        ),
        sender: customer.address,
        kind: Kind::New,
    }
}

async fn memory(rig: &Rig, prefix: &str, sum: &mut Summary) -> Result<()> {
    println!("\n== 4. Memory: one ordinary message vs one with a 25 MB attachment");
    let mut rng = mails::Rng::new(25);
    let size = 25 * 1024 * 1024;
    let mut peaks = Vec::new();
    for (label, file_size) in [("small", 20_000usize), ("big", size)] {
        let support = format!("{prefix}-mem{label}@example.test");
        let agent = format!("{prefix}-memagent@example.test");
        let png = mails::fake_png(&mut rng, file_size);
        let customer = mails::Customer {
            address: format!("mem-{label}@customers.invalid"),
            name: "Memory Probe".into(),
        };
        let raw = mails::customer_mail(
            &customer,
            &support,
            "Here is the full scan",
            &format!("mem-{prefix}-{label}@customers.invalid"),
            None,
            "The scan is attached.\r\n",
            false,
            Some(("scan.png", "image/png", &png)),
            "Wed, 25 Nov 2026 10:00:00 +0000",
        );
        let mut lmtp = Submission::lmtp(&rig.host, rig.lmtp_port).await?;
        lmtp.send(&customer.address, &[&support], &dot_stuffed(&raw))
            .await?;
        lmtp.quit().await?;
        let desk = Desk::new(rig, &support, &agent, "max_size_mb = 30")?;
        let run = tokio::task::block_in_place(|| run_guichet(&desk, &["run", "--once"]))?;
        let report: serde_json::Value = serde_json::from_str(run.stdout.trim())?;
        if report["mailbox"]["new_tickets"] != 1 || report["mail"]["sent"].as_u64() < Some(2) {
            bail!("{label}: unexpected report {report}");
        }
        println!(
            "   {label}: message of {:.1} MB, peak RSS {:.1} MB, {:.2} s",
            raw.len() as f64 / 1e6,
            run.peak_rss_kb as f64 / 1024.0,
            secs(run.wall)
        );
        peaks.push(run.peak_rss_kb as f64 / 1024.0);
        if std::env::var_os("BENCH_KEEP").is_some() {
            println!("   kept: {}", desk.dir.keep().display());
        }
        rig.wait_postfix_idle()?;
    }
    let added = peaks[1] - peaks[0];
    let factor = added / 25.0;
    sum.add(format!(
        "memory 25 MB    one 25 MB attachment adds {added:.1} MB at peak = {factor:.2}x its size (target <= 3x) {}",
        verdict(factor <= 3.0)
    ));
    Ok(())
}

/// Fills a fresh store with `size` tickets as a daemon would have left
/// them: raw mail, message, participant, event, known Message-IDs of the
/// message and its two outgoing mails, the sent outbox rows, the
/// auto-reply record.
async fn prefill(store: &Store, size: usize) -> Result<()> {
    let Store::Sqlite(pool) = store else {
        bail!("not SQLite")
    };
    let now = Utc::now() - chrono::Duration::days(1);
    let seq = "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1)";
    let statements = [
        "INSERT INTO tickets (id, subject, department, priority, client, status, language, created_at, last_activity_at, last_message_from) \
         SELECT i, 'Prefilled question ' || i, 'Support', 'normal', 'old' || i || '@customers.invalid', \
         CASE WHEN i % 2 = 0 THEN 'open' ELSE 'awaiting_customer' END, 'en', $2, $2, 'customer' FROM seq",
        "INSERT INTO participants (ticket_id, address, role) SELECT i, 'old' || i || '@customers.invalid', 'customer' FROM seq",
        "INSERT INTO raw_messages (id, dedup_key, raw, size, received_at, mailbox, imap_uid) \
         SELECT i, 'mid:prefill-' || i || '@customers.invalid', randomblob(1500), 1500, $2, 'old', i FROM seq",
        "INSERT INTO messages (ticket_id, raw_id, direction, kind, from_addr, date, message_id, rule, text) \
         SELECT i, i, 'in', 'customer', 'old' || i || '@customers.invalid', $2, 'prefill-' || i || '@customers.invalid', 'new', \
         'Prefilled question number ' || i || ', with a few words of text so that rows have a realistic size.' FROM seq",
        "INSERT OR IGNORE INTO known_message_ids (message_id, ticket_id) SELECT 'prefill-' || i || '@customers.invalid', i FROM seq \
         UNION ALL SELECT 'ack-' || i || '@support.example.test', i FROM seq \
         UNION ALL SELECT 'copy-' || i || '@support.example.test', i FROM seq",
        "INSERT INTO outbox_mail (ticket_id, kind, envelope_from, recipients, message_id, raw, created_at, next_attempt_at, attempts, sent_at) \
         SELECT i, 'acknowledgement', 'support@example.test', 'old' || i || '@customers.invalid', 'ack-' || i || '@support.example.test', randomblob(1200), $2, $2, 1, $2 FROM seq \
         UNION ALL SELECT i, 'agent_copy', 'support@example.test', 'agent@example.test', 'copy-' || i || '@support.example.test', randomblob(1800), $2, $2, 1, $2 FROM seq",
        "INSERT INTO ticket_events (event_id, ticket_id, event, occurred_at, data) \
         SELECT 'evt_prefill_' || i, i, 'ticket.created', $2, '{}' FROM seq",
        "INSERT INTO auto_replies (address, sent_at) SELECT 'old' || i || '@customers.invalid', $2 FROM seq",
    ];
    let mut tx = pool.begin().await?;
    for body in statements {
        sqlx::query(sqlx::AssertSqlSafe(format!("{seq} {body}")))
            .bind(size as i64)
            .bind(now)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("prefill: {body}"))?;
    }
    tx.commit().await?;
    Ok(())
}

/// Messages against a store of `size` tickets: new questions, replies
/// threaded by In-Reply-To to a random stored ticket, replies found by
/// their subject tag.
fn growth_mails(size: usize, k: usize, salt: &str) -> Vec<Vec<u8>> {
    let mut rng = mails::Rng::new(size as u64);
    let mut out = Vec::with_capacity(k);
    for j in 0..k {
        let roll = rng.below(100);
        let t = 1 + rng.below(size);
        let (customer, subject, parent) = if roll < 50 {
            (format!("growth{j}"), format!("New question {j}"), None)
        } else if roll < 80 {
            (
                format!("old{t}"),
                format!("Re: Prefilled question {t}"),
                Some(format!("prefill-{t}@customers.invalid")),
            )
        } else {
            (
                format!("old{t}"),
                format!("Re: [#{t}] Prefilled question {t}"),
                None,
            )
        };
        let c = mails::Customer {
            address: format!("{customer}@customers.invalid"),
            name: customer.clone(),
        };
        let png;
        let file = if rng.chance(10) {
            let size = 5_000 + rng.below(20_000);
            png = mails::fake_png(&mut rng, size);
            Some(("photo.png", "image/png", png.as_slice()))
        } else {
            None
        };
        out.push(mails::customer_mail(
            &c,
            "support@example.test",
            &subject,
            &format!("growth-{salt}-{size}-{j}@customers.invalid"),
            parent.as_deref(),
            "Hello again, the problem is still there after the update.\r\nRegards\r\n",
            false,
            file,
            "Wed, 25 Nov 2026 10:00:00 +0000",
        ));
    }
    out
}

async fn growth(cfg: &Config, prefix: &str, sum: &mut Summary) -> Result<()> {
    let k = 1000;
    println!(
        "\n== 5. Growth: {k} messages (50% new, 30% In-Reply-To, 20% subject tag) ingested into stores of {:?} tickets",
        cfg.growth
    );
    let mut curve: Vec<(usize, f64)> = Vec::new();
    for &size in &cfg.growth {
        let dir = tempfile::Builder::new()
            .prefix("guichet-bench-")
            .tempdir()?;
        let settings = fresh_ctx_settings(dir.path(), "")?;
        let store = open_store(dir.path()).await?;
        let t = Instant::now();
        prefill(&store, size).await?;
        let filled = t.elapsed();
        let templates = Templates::load(None)?;
        let mails = growth_mails(size, k, prefix);
        let (took, outcomes, _) =
            ingest_all(&settings, &store, &templates, &mails, size as u32 + 1).await?;
        store.close().await;
        let us = secs(took) * 1e6 / k as f64;
        println!(
            "   {size:>7} tickets (filled in {:.1} s): {us:.0} us/message; {outcomes:?}",
            secs(filled)
        );
        curve.push((size, us));
    }
    if let (Some(first), Some(last)) = (curve.first(), curve.last()) {
        let points = curve
            .iter()
            .map(|(s, us)| format!("{s}: {us:.0} us"))
            .collect::<Vec<_>>()
            .join(", ");
        let ratio = last.1 / first.1;
        sum.add(format!(
            "growth          per-message ingest cost {points}; {}k vs {}k tickets: {ratio:.2}x (flat = 1.00x) {}",
            last.0 / 1000,
            first.0 / 1000,
            verdict(ratio < 1.5)
        ));
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` builds and
    // runs this too, without it: stay out of the test suite
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "backlog: a benchmark, run by scripts/bench.sh (cargo bench --bench backlog); skipped"
        );
        return Ok(());
    }
    let cfg = Config::from_env();
    let rig = Rig::load()?;
    let prefix = format!(
        "b{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            % 100_000_000
    );
    println!(
        "Guichet benchmark: {} CPUs, load average {} at start; rig {} ({} on {}), binary {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        rig.dir.display(),
        rig.vars
            .get("MAIL_FORMAT")
            .map_or("maildir", String::as_str),
        if rig.dir.starts_with("/dev/shm") {
            "tmpfs"
        } else {
            "disk"
        },
        guichet_bin()
    );
    let corpus = mails::corpus_messages(&mails::corpus_dir());
    if corpus.is_empty() {
        println!(
            "   corpus not found at {}: generated mail only",
            mails::corpus_dir().display()
        );
    }
    let backlog = mails::backlog(
        cfg.n,
        &format!("{prefix}-desk@example.test"),
        &corpus,
        &prefix,
    );
    let mut sum = Summary::default();
    let peer_rate = if cfg.wants("peer") {
        peer::peer(&rig, &prefix, &corpus, &mut sum).await?
    } else {
        peer::PeerRate::fallback()
    };
    let sqlite = if cfg.wants("backlog") {
        Some(backlog_drain(&cfg, &rig, &prefix, &backlog, &peer_rate, &mut sum).await?)
    } else {
        None
    };
    if cfg.wants("realistic") {
        realistic::realistic(&cfg, &rig, &prefix, &corpus, &mut sum).await?;
    }
    if cfg.wants("big") {
        big_backlog(&cfg, &rig, &prefix, &corpus, &mut sum).await?;
    }
    if cfg.wants("pipeline") {
        pipeline(&backlog, &mut sum).await?;
    }
    if cfg.wants("latency") {
        latency(&cfg, &rig, &prefix, &mut sum).await?;
    }
    if cfg.wants("memory") {
        memory(&rig, &prefix, &mut sum).await?;
    }
    if cfg.wants("growth") {
        growth(&cfg, &prefix, &mut sum).await?;
    }
    if cfg.wants("postgres") {
        postgres(&cfg, &rig, &prefix, &backlog, sqlite, &mut sum).await?;
    }
    println!(
        "\n== Summary (N = {}, load average {} at the end)",
        cfg.n,
        load_average()
    );
    for line in &sum.lines {
        println!("{line}");
    }
    Ok(())
}
