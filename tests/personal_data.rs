//! Personal data over time (issue 24), through the real binary and the
//! real mail servers: `customers export` and `customers erase`, and
//! `[retention]` with the clock moved by `run --once --now`, on SQLite
//! (bytes on disk checked) and PostgreSQL.

mod harness;
mod receiver;
mod support;

use std::path::Path;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use harness::{Desk, iso, mail};
use support::{deliver_lmtp, fetch_all, fresh_pg_database, fresh_user, rig, unique_token};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A customer's mail with one PNG file whose bytes carry `file_marker`.
fn mail_with_png(from: &str, to: &str, subject: &str, body: &str, file_marker: &str) -> Vec<u8> {
    let boundary = format!("b-{}", unique_token());
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(file_marker.as_bytes());
    png.resize(4096, 0);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}@client.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
         --{boundary}\r\nContent-Type: image/png; name=\"shot.png\"\r\n\
         Content-Disposition: attachment; filename=\"shot.png\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
        date = Utc::now().to_rfc2822(),
        id = unique_token(),
    );
    for line in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(line).unwrap());
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// Every file under `dir` (database, its -wal/-shm/-journal, stored
/// files) that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

fn ticket_of_subject(desk: &Desk, subject: &str) -> i64 {
    desk.tickets()
        .iter()
        .find(|t| t["subject"].as_str().is_some_and(|s| s.contains(subject)))
        .unwrap_or_else(|| panic!("no ticket {subject}"))["ticket_id"]
        .as_i64()
        .unwrap()
}

/// X writes a ticket of her own (text and file with markers) and, in Cc of
/// Y's ticket, a message there; then she is exported and erased.
async fn erase_story(desk: Desk, on_disk: bool, hooks: Option<&receiver::Receiver>) {
    let x = fresh_user("xena");
    let y = fresh_user("yann");
    let tok = unique_token();
    let body_marker = format!("XBODY{tok}");
    let file_marker = format!("XFILE{tok}");
    let cc_marker = format!("XINY{tok}");
    let y_marker = format!("YBODY{tok}");
    let t0 = at("2031-02-02T09:00:00Z");

    deliver_lmtp(
        &desk.support,
        &mail_with_png(
            &x,
            &desk.support,
            &format!("Own {tok}"),
            &format!("My account number is {body_marker}."),
            &file_marker,
        ),
    )
    .await;
    deliver_lmtp(
        &desk.support,
        &mail(
            &[
                ("From", y.as_str()),
                ("To", desk.support.as_str()),
                ("Cc", x.as_str()),
                ("Subject", &format!("Theirs {tok}")),
            ],
            &format!("Please look, {y_marker}."),
        ),
    )
    .await;
    desk.pass(t0);
    let own = ticket_of_subject(&desk, &format!("Own {tok}"));
    let theirs = ticket_of_subject(&desk, &format!("Theirs {tok}"));
    deliver_lmtp(
        &desk.support,
        &mail(
            &[
                ("From", x.as_str()),
                ("To", desk.support.as_str()),
                ("Subject", &format!("Re: [#{theirs}] Theirs {tok}")),
            ],
            &format!("Me too, {cc_marker}."),
        ),
    )
    .await;
    desk.pass(t0 + TimeDelta::minutes(5));
    let before = desk.ticket(theirs);
    let texts = |t: &Value| -> Vec<String> {
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(
        texts(&before).iter().any(|t| t.contains(&cc_marker)),
        "X's message landed in Y's ticket: {before:#}"
    );
    let stats_before = desk.json(&["stats", "--json", "--now", "2031-03-01T00:00:00Z"]);

    // export: her texts and her file, not Y's words
    let out = desk.dir.path().join("export-x");
    let o = desk.run(&["customers", "export", &x, "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = std::fs::read_to_string(out.join("export.json")).unwrap();
    assert!(json.contains(&body_marker), "{json}");
    assert!(json.contains(&cc_marker), "{json}");
    assert!(!json.contains(&y_marker), "Y's words are not X's data");
    assert!(
        !files_holding(&out.join("files"), file_marker.as_bytes()).is_empty(),
        "her file is exported"
    );
    assert!(
        !files_holding(&out.join("mail"), body_marker.as_bytes()).is_empty(),
        "her original mail is exported"
    );
    std::fs::remove_dir_all(&out).unwrap();

    if on_disk {
        // what the check below looks for is there before the erasure
        for marker in [&body_marker, &file_marker, &cc_marker] {
            assert!(
                !files_holding(desk.dir.path(), marker.as_bytes()).is_empty(),
                "{marker} stored"
            );
        }
    }

    // a dry run changes nothing
    let o = desk.run(&["customers", "erase", &x]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("\"dry_run\": true"), "{said}");
    assert_eq!(
        desk.ticket(own)["ticket_id"],
        own,
        "still there after a dry run"
    );

    let o = desk.run(&["customers", "erase", &x, "--yes"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!said.contains(&x), "the report names no one: {said}");
    if let Some(r) = hooks {
        // the audit webhook goes out with the next pass: counts, not who
        desk.pass(t0 + TimeDelta::minutes(10));
        let erased: Vec<_> = r
            .all()
            .into_iter()
            .filter(|q| q.json()["event"] == "customer.erased")
            .collect();
        assert_eq!(erased.len(), 1, "{:?}", r.all().len());
        let body = String::from_utf8_lossy(&erased[0].body).to_lowercase();
        assert!(!body.contains(&x.to_lowercase()), "{body}");
        assert_eq!(erased[0].json()["data"]["tickets"], 1, "{body}");
    }

    // her ticket is gone, Y's is intact but for her message
    let gone = desk.run(&["tickets", "show", &own.to_string(), "--json"]);
    assert_eq!(gone.status.code(), Some(3), "her ticket is removed");
    let after = desk.ticket(theirs);
    assert!(texts(&after).iter().any(|t| t.contains(&y_marker)));
    assert_eq!(texts(&before).len(), texts(&after).len());
    assert!(
        texts(&after)
            .iter()
            .any(|t| t.contains("removed at its author's request"))
    );
    let shown = after.to_string().to_lowercase();
    assert!(!shown.contains(&cc_marker.to_lowercase()), "{after:#}");
    assert!(
        !shown.contains(&x.to_lowercase()),
        "off the ticket: {after:#}"
    );
    let stats_after = desk.json(&["stats", "--json", "--now", "2031-03-01T00:00:00Z"]);
    assert_eq!(stats_before["tickets"], stats_after["tickets"]);
    assert_eq!(stats_before["attachments"], stats_after["attachments"]);

    if on_disk {
        // (Y's own mail, which named her in Cc, is Y's and stays)
        for marker in [&body_marker, &file_marker, &cc_marker] {
            let found = files_holding(desk.dir.path(), marker.as_bytes());
            assert!(found.is_empty(), "{marker} still in {found:?}");
        }
        assert!(
            !files_holding(desk.dir.path(), y_marker.as_bytes()).is_empty(),
            "Y's ticket is still stored"
        );
    }
}

#[tokio::test]
async fn erase_leaves_no_trace_of_the_person_on_sqlite() {
    let r = receiver::Receiver::start();
    let hook = format!("[[webhooks]]\nurl = \"{}\"\n", r.url("/audit"));
    let desk = Desk::with("", "allowed_extensions = \"png\"", &hook);
    erase_story(desk, true, Some(&r)).await;
}

#[tokio::test]
async fn erase_on_postgres() {
    let url = fresh_pg_database().await;
    let desk = Desk::build("", "allowed_extensions = \"png\"", "", Some(&url));
    erase_story(desk, false, None).await;
}

fn db_bytes(desk: &Desk) -> u64 {
    ["guichet.db", "guichet.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(desk.dir.path().join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Twenty tickets with big bodies, closed by auto-close; a month later
/// retention removes them whole; a later one stays.
async fn retention_story(desk: Desk, sqlite: bool) {
    let tok = unique_token();
    let t0 = at("2031-03-02T08:00:00Z");
    let filler: String = (0..1500)
        .map(|i| format!("line {i} of a long description {tok}\n"))
        .collect();
    for i in 0..20 {
        let c = fresh_user(&format!("c{i}"));
        let raw = if i % 4 == 0 {
            mail_with_png(
                &c,
                &desk.support,
                &format!("Old {i} {tok}"),
                &filler,
                &format!("F{i}{tok}"),
            )
        } else {
            mail(
                &[
                    ("From", c.as_str()),
                    ("To", desk.support.as_str()),
                    ("Subject", &format!("Old {i} {tok}")),
                ],
                &filler,
            )
        };
        deliver_lmtp(&desk.support, &raw).await;
    }
    desk.pass(t0);
    let closed = desk.pass(t0 + TimeDelta::days(3));
    assert_eq!(closed["auto_closed"], 20, "{closed}");
    let c = fresh_user("later");
    deliver_lmtp(
        &desk.support,
        &mail(
            &[
                ("From", c.as_str()),
                ("To", desk.support.as_str()),
                ("Subject", &format!("Later {tok}")),
            ],
            "Still here?",
        ),
    )
    .await;
    desk.pass(t0 + TimeDelta::days(4));
    assert_eq!(desk.tickets().len(), 21);
    let period = [
        "stats",
        "--json",
        "--since",
        "2031-03-01",
        "--now",
        "2031-03-08T00:00:00Z",
    ];
    let stats_before = desk.json(&period);
    let size_before = db_bytes(&desk);

    // nothing is due yet at 29 days (but the sent mail's bodies, after 7)
    let p = desk.pass(t0 + TimeDelta::days(3 + 29));
    assert_eq!(p["retention"]["removed"]["tickets"], 0, "{p}");
    if sqlite {
        // made by this release: incremental vacuum from the start
        assert_eq!(p["retention"]["reclaimed"]["full_vacuum"], false, "{p}");
    }
    let p = desk.pass(t0 + TimeDelta::days(3 + 31));
    assert_eq!(p["retention"]["removed"]["tickets"], 20, "{p}");

    let left = desk.tickets();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0]["subject"].as_str().unwrap().contains("Later"));
    let stats_after = desk.json(&period);
    assert_eq!(stats_before["tickets"], stats_after["tickets"]);
    assert_eq!(stats_before["attachments"], stats_after["attachments"]);
    assert_eq!(stats_before["webhooks"], stats_after["webhooks"]);
    assert_eq!(stats_after["tickets"]["opened"], 21, "{stats_after:#}");
    if sqlite {
        let size_after = db_bytes(&desk);
        eprintln!("database: {size_before} bytes before, {size_after} after retention");
        assert!(
            size_after * 2 < size_before,
            "database {size_before} → {size_after} bytes"
        );
        // the files went with their tickets
        assert!(files_holding(&desk.dir.path().join("files"), tok.as_bytes()).is_empty());
        assert!(files_holding(desk.dir.path(), b"long description").is_empty());
    }
}

#[tokio::test]
async fn retention_removes_closed_tickets_and_gives_the_space_back_on_sqlite() {
    let desk = Desk::with(
        "auto_close_days = 2\nauto_close_scope = \"any\"",
        "allowed_extensions = \"png\"",
        "[retention]\nclosed_tickets_days = 30\n",
    );
    retention_story(desk, true).await;
}

#[tokio::test]
async fn retention_on_postgres() {
    let url = fresh_pg_database().await;
    let desk = Desk::build(
        "auto_close_days = 2\nauto_close_scope = \"any\"",
        "allowed_extensions = \"png\"",
        "[retention]\nclosed_tickets_days = 30\n",
        Some(&url),
    );
    retention_story(desk, false).await;
}

/// `imap.processed`: stored mail is moved to the folder, or deleted; with
/// `keep` (the default) it stays, flagged.
async fn processed_story(how: &str) -> (Desk, usize, usize) {
    let desk = Desk::new("");
    if how != "keep" {
        desk.edit_settings(
            "poll_seconds = 1",
            &format!("poll_seconds = 1\nprocessed = \"{how}\"\nprocessed_folder = \"Done\""),
        );
    }
    let c = fresh_user("proc");
    for i in 0..3 {
        deliver_lmtp(
            &desk.support,
            &mail(
                &[
                    ("From", c.as_str()),
                    ("To", desk.support.as_str()),
                    ("Subject", &format!("Mail {i}")),
                ],
                "Hello",
            ),
        )
        .await;
    }
    desk.pass(at("2031-04-01T00:00:00Z"));
    assert_eq!(desk.tickets().len(), 3, "every mail is stored first");
    let inbox = fetch_all(&desk.support).await.len();
    let mut settings = rig().imap_settings(&desk.support, guichet::settings::TlsMode::None);
    settings.folder = "Done".into();
    let done = match guichet::adapters::imap::Mailbox::connect(&settings).await {
        Ok(mut m) => m.uids_after(0).await.unwrap().len(),
        Err(_) => 0, // no such folder
    };
    (desk, inbox, done)
}

#[tokio::test]
async fn processed_mail_is_kept_moved_or_deleted_once_stored() {
    let (_, inbox, done) = processed_story("keep").await;
    assert_eq!((inbox, done), (3, 0), "keep");
    let (_, inbox, done) = processed_story("move").await;
    assert_eq!((inbox, done), (0, 3), "move");
    let (desk, inbox, done) = processed_story("delete").await;
    assert_eq!((inbox, done), (0, 0), "delete");
    // a second pass finds nothing new and loses nothing
    desk.pass(at("2031-04-01T00:10:00Z"));
    assert_eq!(desk.tickets().len(), 3);
}

/// A database made by release 0.1.0 (no incremental vacuum): retention
/// converts it once with a full VACUUM, loses nothing it should keep, and
/// `stats` still counts the removed ticket.
#[tokio::test]
async fn a_database_from_an_earlier_release_is_converted_on_first_removal() {
    let fixture = Path::new("/work/shared/fixtures/upgrade/0.1.0-4ce8c65");
    let fixture = if fixture.exists() {
        fixture.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/upgrade/0.1.0-4ce8c65")
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    std::fs::copy(fixture.join("guichet.db"), &db).unwrap();
    let url = format!("sqlite://{}", db.display());
    let desk = Desk::build(
        "auto_close_days = 0",
        "",
        "[retention]\nclosed_tickets_days = 30\n",
        Some(&url),
    );
    let mode = || async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let m: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&mut c)
            .await
            .unwrap();
        m
    };
    assert_eq!(mode().await, 0, "the fixture predates incremental vacuum");
    // read-only commands never migrate an older schema (issue 15): the
    // admin's upgrade step
    let out = desk.run(&["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode().await, 0, "migrating converts nothing yet");
    let period = ["stats", "--json", "--now", "2030-01-01T00:00:00Z"];
    let before = desk.json(&period);
    assert_eq!(desk.tickets().len(), 3);
    let p = desk.pass(at("2030-01-01T00:00:00Z"));
    assert_eq!(p["retention"]["removed"]["tickets"], 1, "{p}");
    assert_eq!(p["retention"]["reclaimed"]["full_vacuum"], true, "{p}");
    assert_eq!(mode().await, 2, "now INCREMENTAL");
    assert_eq!(desk.tickets().len(), 2, "the open tickets stay");
    let after = desk.json(&period);
    assert_eq!(before["tickets"], after["tickets"]);
    assert_eq!(before["attachments"], after["attachments"]);
}

/// `iso` is used by the pass helper; keep the import honest.
#[test]
fn iso_is_rfc3339() {
    assert_eq!(iso(at("2031-01-01T00:00:00Z")), "2031-01-01T00:00:00Z");
}
