//! `guichet cleanup [--dry-run]` on a store filled through the real binary:
//! the stored file of a ticket closed longer than
//! `attachments.retention_days` goes; a file with the same bytes in
//! another ticket (one file on disk: storage is content-addressed) stays
//! while that ticket is open or closed recently. Temporary files left by
//! writes that died (older than an hour by the real clock) go too; a
//! fresh one, maybe a write in progress, stays.

mod harness;
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};

use harness::{Desk, iso, reply_to_mail};
use support::{deliver_lmtp, fetch_all, fresh_user, unique_token};

const WAIT: Duration = Duration::from_secs(20);

fn s_plus(days: i64, minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2032-02-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + TimeDelta::days(days)
        + TimeDelta::minutes(minutes)
}

fn mail_with_files(from: &str, to: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let boundary = format!("b-{}", unique_token());
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Files\r\nDate: {date}\r\n\
         Message-ID: <{id}@test.example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n",
        date = Utc::now().to_rfc2822(),
        id = unique_token(),
    );
    for (name, bytes) in files {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
        ));
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

fn png(len: usize, fill: u8) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.resize(len, fill);
    v
}

fn jpeg(len: usize, fill: u8) -> Vec<u8> {
    let mut v = b"\xff\xd8\xff\xe0\0\x10JFIF\0".to_vec();
    v.resize(len, fill);
    v
}

/// The names of the files under the storage directory (their hashes).
fn stored(dir: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, &mut out);
    out
}

/// The stored hashes of a ticket's accepted files, by file name.
fn hashes(desk: &Desk, id: i64) -> Vec<(String, String)> {
    desk.ticket(id)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["attachments"].as_array().unwrap().clone())
        .filter(|a| a["verdict"] == "accepted")
        .map(|a| {
            (
                a["filename"].as_str().unwrap().to_string(),
                a["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn opens(desk: &Desk, files: &[(&str, &[u8])], now: DateTime<Utc>) -> i64 {
    let customer = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &mail_with_files(&customer, &desk.support, files),
    )
    .await;
    desk.pass(now);
    desk.tickets()
        .iter()
        .find(|t| t["client"] == customer.as_str())
        .and_then(|t| t["ticket_id"].as_i64())
        .expect("the new ticket")
}

/// The agent closes ticket `id` with `#close` at `now`, from its copy.
async fn agent_closes(desk: &Desk, id: i64, now: DateTime<Utc>) {
    let want = format!("t{id}");
    let started = std::time::Instant::now();
    let copy = loop {
        if let Some(m) = fetch_all(&desk.agent)
            .await
            .into_iter()
            .find(|m| harness::marked_ticket(m).as_deref() == Some(want.as_str()))
        {
            break m;
        }
        assert!(started.elapsed() < WAIT, "no copy of ticket {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (to, raw) = reply_to_mail(&desk.agent, &copy, "#close\nAll done.");
    deliver_lmtp(&to, &raw).await;
    desk.pass(now);
    assert_eq!(desk.ticket(id)["status"], "closed");
}

fn cleanup(desk: &Desk, now: DateTime<Utc>, dry_run: bool) -> String {
    let now = iso(now);
    let mut args = vec!["cleanup", "--now", now.as_str()];
    if dry_run {
        args.push("--dry-run");
    }
    let out = desk.run(&args);
    assert!(
        out.status.success(),
        "cleanup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn cleanup_removes_files_of_long_closed_tickets_and_keeps_shared_ones() {
    let desk = Desk::with("", "retention_days = 30", "");
    let files_dir = desk.dir.path().join("files");
    let only_a = png(1100, 1);
    let shared_with_open = jpeg(2100, 2);
    let shared_with_recent = png(1200, 3);

    // A: three files; B (stays open) has A's jpeg; C (closed on day 20)
    // has A's second png
    let a = opens(
        &desk,
        &[
            ("only-a.png", &only_a),
            ("shared.jpg", &shared_with_open),
            ("shared.png", &shared_with_recent),
        ],
        s_plus(0, 0),
    )
    .await;
    let b = opens(&desk, &[("same.jpg", &shared_with_open)], s_plus(0, 1)).await;
    let c = opens(&desk, &[("same.png", &shared_with_recent)], s_plus(0, 2)).await;
    let a_files = hashes(&desk, a);
    assert_eq!(a_files.len(), 3, "{a_files:?}");
    let sha = |name: &str| {
        a_files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    let (sha_only_a, sha_open, sha_recent) =
        (sha("only-a.png"), sha("shared.jpg"), sha("shared.png"));
    assert_eq!(hashes(&desk, b)[0].1, sha_open, "same bytes, same hash");
    assert_eq!(hashes(&desk, c)[0].1, sha_recent);
    let all: BTreeSet<String> = [&sha_only_a, &sha_open, &sha_recent]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(
        stored(&files_dir),
        all,
        "five files, three contents on disk"
    );

    agent_closes(&desk, a, s_plus(0, 60)).await;
    agent_closes(&desk, c, s_plus(20, 0)).await;

    // day 32: A closed 32 days ago (> 30), C 12 days ago, B open
    let report = cleanup(&desk, s_plus(32, 0), true);
    assert!(
        report.contains("would remove") && report.contains(&sha_only_a),
        "{report}"
    );
    assert!(!report.contains(&sha_open) && !report.contains(&sha_recent));
    assert!(
        report.contains("1 file(s), 1100 bytes would be removed"),
        "{report}"
    );
    assert!(
        report.contains("2 file(s) still referenced kept"),
        "{report}"
    );
    assert_eq!(stored(&files_dir), all, "a dry run removes nothing");

    let report = cleanup(&desk, s_plus(32, 0), false);
    assert!(report.contains("1 file(s), 1100 bytes removed"), "{report}");
    let expected: BTreeSet<String> = [&sha_open, &sha_recent].into_iter().cloned().collect();
    assert_eq!(stored(&files_dir), expected);
    // the verdicts stay in the ticket's history
    assert_eq!(hashes(&desk, a).len(), 3);

    // again: nothing left to remove
    let report = cleanup(&desk, s_plus(32, 0), false);
    assert!(report.contains("0 file(s), 0 bytes removed"), "{report}");

    // day 51: C closed 31 days ago; B is still open
    let report = cleanup(&desk, s_plus(51, 0), false);
    assert!(report.contains("1 file(s), 1200 bytes removed"), "{report}");
    let expected: BTreeSet<String> = [&sha_open].into_iter().cloned().collect();
    assert_eq!(stored(&files_dir), expected, "B's file is kept");
}

#[tokio::test]
async fn retention_0_keeps_files_forever() {
    let desk = Desk::with("", "retention_days = 0", "");
    let files_dir = desk.dir.path().join("files");
    let id = opens(&desk, &[("x.png", &png(900, 7))], s_plus(0, 0)).await;
    agent_closes(&desk, id, s_plus(0, 5)).await;
    let before = stored(&files_dir);
    assert_eq!(before.len(), 1);
    let report = cleanup(&desk, s_plus(36_500, 0), false);
    assert!(report.contains("kept forever"), "{report}");
    assert_eq!(stored(&files_dir), before);
}

/// `.tmp-<sha256>-<nonce>` beside a stored file, as a killed write leaves it,
/// last modified `age` ago by the real clock.
fn plant_temp(dir: &Path, sha: &str, nonce: u64, age: Duration) -> std::path::PathBuf {
    let path = dir.join(format!(".tmp-{sha}-{nonce:016x}"));
    std::fs::write(&path, b"half a file").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - age)
        .unwrap();
    path
}

#[tokio::test]
async fn cleanup_removes_stale_temporary_files_even_when_files_are_kept_forever() {
    let desk = Desk::with("", "retention_days = 0", "");
    let files_dir = desk.dir.path().join("files");
    let id = opens(&desk, &[("x.png", &png(900, 9))], s_plus(0, 0)).await;
    let sha = hashes(&desk, id)[0].1.clone();
    let content = files_dir.join(&sha[0..2]).join(&sha[2..4]).join(&sha);
    assert!(content.is_file(), "{}", content.display());
    let dir = content.parent().unwrap();
    let stale = plant_temp(dir, &sha, 1, Duration::from_secs(3 * 3600));
    let fresh = plant_temp(dir, &sha, 2, Duration::from_secs(5 * 60));
    // `--now` a century ahead: the files' age is still read on the real
    // clock, so the fresh one does not look abandoned
    let far = s_plus(36_500, 0);

    let report = cleanup(&desk, far, true);
    assert!(
        report.contains(&format!("would remove {}", stale.display())),
        "{report}"
    );
    assert!(
        report.contains("1 stale temporary file(s) would be removed"),
        "{report}"
    );
    assert!(!report.contains(&fresh.display().to_string()), "{report}");
    assert!(report.contains("kept forever"), "{report}");
    assert!(stale.exists() && fresh.exists() && content.exists());

    let report = cleanup(&desk, far, false);
    assert!(
        report.contains(&format!("removed {}", stale.display())),
        "{report}"
    );
    assert!(
        report.contains("1 stale temporary file(s) removed"),
        "{report}"
    );
    assert!(!stale.exists(), "the stale temporary file is gone");
    assert!(fresh.exists(), "a fresh temporary file is kept");
    assert!(content.exists(), "the stored file is kept");

    let report = cleanup(&desk, far, false);
    assert!(
        report.contains("0 stale temporary file(s) removed"),
        "{report}"
    );
}
