//! Issue 25 under the running daemon (`guichet run`, not `--once`): the
//! file system holding the database fills up while customers write, then
//! the admin frees it; the file system holding the attachments is
//! remounted read-only, then read-write again. Each time intake pauses
//! (`/readyz` says why, the store-error counter rises, one
//! `system.degraded` webhook), and resumes by itself without a restart
//! once the fault clears: every mail becomes a ticket exactly once within
//! a minute, every customer gets one acknowledgement, one
//! `system.recovered` webhook, and the log stays short (back-off, one line
//! per step).
//!
//! These tests mount small tmpfs file systems, so they need root (CI runs
//! as root); without it they say so loudly and pass. The database's own
//! file system cannot be remounted read-only under a running daemon (Linux
//! refuses with EBUSY while a file on it is open for writing, and SQLite
//! keeps its database open), so the read-only case is the file store's,
//! where nothing stays open between writes.

mod harness;
mod receiver;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use harness::Desk;
use receiver::Receiver;
use support::{deliver_lmtp, fetch_all, fresh_user, simple_message, unique_token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// After the fault clears, every mail is a ticket within this.
const RECOVERY: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);
const MAILS: usize = 20;

#[tokio::test]
async fn a_full_disk_pauses_intake_which_resumes_by_itself_once_space_is_freed() {
    let Some(fs) = SmallFs::mount("8m") else {
        return;
    };
    let db = format!("sqlite://{}", fs.dir.join("guichet.db").display());
    let daemon = Daemon::start(|extra| Desk::build("", "", extra, Some(&db)), |_| {}).await;

    let filler = fs.fill();
    let customers = daemon.send_mails(MAILS, "Disk full", |_| None).await;
    daemon.wait_paused("disk full").await;
    // the fault lasts a while: back-off steps of 1, 2, 4, 8 s
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        daemon.desk.tickets().len(),
        1,
        "nothing stored while the disk is full"
    );
    std::fs::remove_file(&filler).unwrap();

    daemon
        .check_recovery(&customers, "Disk full", "disk full")
        .await;
}

#[tokio::test]
async fn a_read_only_file_store_pauses_intake_which_resumes_by_itself() {
    let Some(fs) = SmallFs::mount("8m") else {
        return;
    };
    let files = fs.dir.join("files");
    let daemon = Daemon::start(
        |extra| Desk::build("", "", extra, None),
        |desk| {
            desk.edit_settings(
                "storage_dir = \"files\"",
                &format!("storage_dir = \"{}\"", files.display()),
            )
        },
    )
    .await;
    fs.remount("ro");
    let customers = daemon
        .send_mails(MAILS / 2, "Read-only", |i| Some(unique_png(i)))
        .await;
    daemon.wait_paused("read-only").await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(daemon.desk.tickets().len(), 1, "nothing taken meanwhile");
    fs.remount("rw");

    let desk = daemon
        .check_recovery(&customers, "Read-only", "read-only")
        .await;
    // every file is in the store
    for t in desk.tickets().iter().skip(1) {
        let id = t["ticket_id"].as_i64().unwrap();
        let shown = desk.ticket(id);
        let file = &shown["messages"][0]["attachments"][0];
        assert_eq!(file["verdict"], "accepted", "ticket {id}: {file}");
        let sha = file["sha256"].as_str().unwrap();
        let path = files.join(&sha[0..2]).join(&sha[2..4]).join(sha);
        assert!(path.is_file(), "{} stored", path.display());
    }
}

/// A daemon at work on a fresh desk, with a metrics listener and a webhook
/// endpoint for the system events.
struct Daemon {
    desk: Desk,
    child: Child,
    log: PathBuf,
    metrics: String,
    hooks: Receiver,
}

impl Daemon {
    /// Starts `guichet run` on the desk `build` makes (given the extra
    /// sections to add) once `edit` has changed it, and waits until one
    /// first mail is a ticket.
    async fn start(build: impl FnOnce(&str) -> Desk, edit: impl FnOnce(&Desk)) -> Daemon {
        let hooks = Receiver::start();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let metrics = format!("127.0.0.1:{port}");
        let extra = format!(
            "[metrics]\nlisten = \"{metrics}\"\n\n[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\n\
             events = [\"system.degraded\", \"system.recovered\"]\n",
            hooks.url("/system")
        );
        let desk = build(&extra);
        edit(&desk);
        let log = desk.dir.path().join("daemon.log");
        let child = desk
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            desk,
            child,
            log,
            metrics,
            hooks,
        };
        let first = fresh_user("first");
        let raw = attachment_message(
            &first,
            &daemon.desk.support,
            "Warm-up",
            Some(unique_png(999)),
        );
        deliver_lmtp(&daemon.desk.support, &raw).await;
        daemon.wait_tickets(1, WAIT).await;
        assert_eq!(daemon.get("/readyz").await.0, 200, "ready at work");
        assert_eq!(daemon.get("/healthz").await.0, 200);
        daemon
    }

    /// Delivers `n` mails from fresh customers, with `file(i)` attached
    /// when given; returns the customers.
    async fn send_mails(
        &self,
        n: usize,
        subject: &str,
        file: impl Fn(usize) -> Option<Vec<u8>>,
    ) -> Vec<String> {
        let mut customers = Vec::new();
        for i in 0..n {
            let customer = fresh_user("customer");
            let raw = attachment_message(
                &customer,
                &self.desk.support,
                &format!("{subject} {i}"),
                file(i),
            );
            deliver_lmtp(&self.desk.support, &raw).await;
            customers.push(customer);
        }
        customers
    }

    /// Waits until `/readyz` says intake is paused, for `why`, and the
    /// metrics say so too.
    async fn wait_paused(&self, why: &str) {
        let start = Instant::now();
        loop {
            let (status, body) = self.get("/readyz").await;
            if status == 503 {
                assert!(body.contains(why), "readyz: {body}");
                break;
            }
            assert!(
                start.elapsed() < WAIT,
                "intake never paused: readyz {status} {body}\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (_, metrics) = self.get("/metrics").await;
        assert!(metrics.contains("\nguichet_intake_paused 1\n"), "{metrics}");
        assert!(
            metric_sum(&metrics, "guichet_store_errors_total") > 0.0,
            "{metrics}"
        );
    }

    /// After the fault cleared: every mail a ticket once, within
    /// [`RECOVERY`], one acknowledgement each, nothing unplaced, ready
    /// again, one event each way, a short log.
    async fn check_recovery(mut self, customers: &[String], subject: &str, why: &str) -> Desk {
        let tickets = self.wait_tickets(customers.len() + 1, RECOVERY).await;
        let mut subjects: Vec<String> = tickets
            .iter()
            .map(|t| t["subject"].as_str().unwrap().to_string())
            .collect();
        subjects.sort();
        subjects.dedup();
        assert_eq!(
            subjects.len(),
            customers.len() + 1,
            "once each: {subjects:?}"
        );
        for i in 0..customers.len() {
            assert!(subjects.contains(&format!("{subject} {i}")), "{subjects:?}");
        }
        let problems = self.desk.json(&["tickets", "problems", "--json"]);
        assert_eq!(problems.as_array().map(Vec::len), Some(0), "{problems}");
        assert_eq!(self.get("/readyz").await.0, 200, "ready again");
        let (_, metrics) = self.get("/metrics").await;
        assert!(metrics.contains("\nguichet_intake_paused 0\n"), "{metrics}");

        // one acknowledgement each, not two
        for customer in customers {
            support::wait_for_messages(customer, 1, WAIT).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        for customer in customers {
            let got = fetch_all(customer).await;
            assert_eq!(
                got.len(),
                1,
                "{customer}: {:?}",
                got.iter().map(|m| harness::subject(m)).collect::<Vec<_>>()
            );
        }

        // the chat channel heard of it once each way
        self.hooks
            .wait_until(WAIT, "system.recovered", |r| {
                r.iter().any(|x| x.json()["event"] == "system.recovered")
            })
            .await;
        let events: Vec<serde_json::Value> =
            self.hooks.to("/system").iter().map(|r| r.json()).collect();
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["system.degraded", "system.recovered"], "{events:?}");
        assert!(
            events[0]["data"]["cause"].as_str().unwrap().contains(why),
            "{}",
            events[0]
        );

        signal(&self.child, "-TERM");
        let status = wait_exit(&mut self.child, Duration::from_secs(20)).expect("stops on SIGTERM");
        let log = self.log_text();
        assert!(status.success(), "{status:?}\n{log}");
        let warnings = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .count();
        if std::env::var_os("GUICHET_TEST_SHOW_LOG").is_some() {
            eprintln!("{warnings} warning lines in the daemon's log:\n{log}");
        }
        assert!(warnings < 100, "{warnings} warning lines:\n{log}");
        assert!(log.contains("intake paused"), "{log}");
        assert!(log.contains("intake resumed"), "{log}");
        self.desk
    }

    async fn wait_tickets(&self, n: usize, within: Duration) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let t = self.desk.tickets();
            if t.len() >= n {
                return t;
            }
            assert!(
                start.elapsed() < within,
                "{} of {n} tickets after {within:?}\n{}",
                t.len(),
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// GET on the metrics listener: status and body.
    async fn get(&self, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(&self.metrics)
            .await
            .unwrap_or_else(|e| panic!("metrics listener {}: {e}", self.metrics));
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {out:?}"));
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, body.to_string())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The sum of a metric over its labels.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A 1×1 PNG with a trailer of its own: a file the store has not seen.
fn unique_png(i: usize) -> Vec<u8> {
    let mut png = base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
        .unwrap();
    png.extend(format!("{i}-{}", unique_token()).bytes());
    png
}

fn attachment_message(from: &str, to: &str, subject: &str, file: Option<Vec<u8>>) -> Vec<u8> {
    let Some(file) = file else {
        return simple_message(from, to, subject, "Hello, it does not work.");
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(file);
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <fault-{}@example.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nHere is a screenshot.\r\n\
         --b\r\nContent-Type: image/png; name=\"screen.png\"\r\n\
         Content-Disposition: attachment; filename=\"screen.png\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n",
        unique_token()
    )
    .into_bytes()
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A tmpfs of its own, unmounted on drop.
struct SmallFs {
    _base: tempfile::TempDir,
    dir: PathBuf,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        // SAFETY: geteuid has no preconditions
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "\n!!!! SKIPPED: this test mounts small file systems and needs root (CI runs as root) !!!!\n"
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

    /// Fills the file system to the last byte; returns the filler's path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x55u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.write_all(&[0x55]);
        path
    }

    fn remount(&self, mode: &str) {
        remount(&self.dir, mode);
    }
}

fn remount(dir: &Path, mode: &str) {
    let out = std::process::Command::new("mount")
        .args(["-o", &format!("remount,{mode}")])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "remount {mode}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}
