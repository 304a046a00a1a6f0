//! The attachment gate end to end, against the real Dovecot, Postfix and
//! clamd of the rig: a customer's mail with one good file and several bad
//! ones opens a ticket holding the good one, the file is stored
//! content-addressed, the agent's copy carries it and names the refused
//! ones, and the customer receives ONE refusal email naming each refused
//! file and why, with the accepted types and the size limit.

mod harness;
mod support;

use std::time::Duration;

use base64::Engine;
use harness::{Desk, body_text};
use support::{deliver_lmtp, fetch_all, fresh_user, rig, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);
const EICAR: &str = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn png() -> Vec<u8> {
    // a real 1×1 PNG
    base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
        .unwrap()
}

fn pe_executable() -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[0] = b'M';
    b[1] = b'Z';
    b[0x3c] = 0x80;
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b
}

fn part(name: &str, content_type: &str, bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "--b\r\nContent-Type: {content_type}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        lines.join("\r\n")
    )
}

#[tokio::test]
async fn one_good_file_is_kept_and_the_bad_ones_are_refused_in_one_email() {
    let r = rig();
    let desk = Desk::with(
        "",
        "allowed_extensions = \"jpg,png,pdf,txt\"\nmax_size_mb = 1",
        &format!(
            "[antivirus]\nclamd = \"tcp://{}:{}\"\n",
            r.clamd_host, r.clamd_port
        ),
    );
    let customer = fresh_user("customer");
    let mut raw = format!(
        "From: Ann <{customer}>\r\nTo: {}\r\nSubject: Screenshots\r\nMessage-ID: <att-{}@example.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHere are my files.\r\n",
        desk.support,
        support::unique_token()
    );
    raw += &part("screen.png", "image/png", &png());
    raw += &part("photo.jpg", "image/jpeg", &pe_executable());
    raw += &part("invoice.pdf.exe", "application/pdf", b"%PDF-1.4 harmless");
    raw += &part(
        "notes.txt",
        "text/plain",
        b"<html><script>alert(1)</script></html>",
    );
    raw += &part("eicar.txt", "text/plain", EICAR.as_bytes());
    raw += &part(
        "huge.png",
        "image/png",
        &[png(), vec![0u8; 2 * 1024 * 1024]].concat(),
    );
    raw += &part(
        "../../etc/passwd.txt",
        "text/plain",
        b"just text, hostile name\n",
    );
    raw += "--b--\r\n";
    deliver_lmtp(&desk.support, raw.as_bytes()).await;

    desk.run_once(None);

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1);
    let t = desk.ticket(tickets[0]["ticket_id"].as_i64().unwrap());
    let files = t["messages"][0]["attachments"].as_array().unwrap().clone();
    let verdict = |name: &str| {
        files
            .iter()
            .find(|f| f["filename"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in {files:#?}"))
            .clone()
    };
    assert_eq!(verdict("screen.png")["verdict"], "accepted");
    assert_eq!(verdict("screen.png")["sniffed_type"], "image/png");
    for (name, codes) in [
        ("photo.jpg", &["executable", "content_mismatch"][..]),
        ("invoice.pdf.exe", &["extension_not_allowed"][..]),
        ("notes.txt", &["content_mismatch", "executable"][..]),
        ("eicar.txt", &["infected"][..]),
        ("huge.png", &["too_large"][..]),
    ] {
        let v = verdict(name);
        assert_eq!(v["verdict"], "refused", "{name}: {v:#}");
        let code = v["reason_code"].as_str().unwrap();
        assert!(
            codes.contains(&code),
            "{name}: expected one of {codes:?}, got {v:#}"
        );
    }
    // the hostile name is stored without its path, and the file itself
    // lives under storage_dir by its hash only
    let hostile = verdict("passwd.txt");
    assert_eq!(hostile["verdict"], "accepted");
    assert!(!hostile["filename"].as_str().unwrap().contains('/'));
    let sha = verdict("screen.png")["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let stored: Vec<_> = walk(&desk.dir.path().join("files"));
    assert!(stored.iter().any(|p| p.ends_with(&sha)), "{stored:?}");
    assert!(!desk.dir.path().join("etc").exists());

    // the customer: ONE mail, the acknowledgement listing the 5 refused
    // files (issue 12: it was two mails with the same subject)
    let mail = wait_for_messages(&customer, 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fetch_all(&customer).await.len(),
        1,
        "the acknowledgement carries the refusals"
    );
    let refusal = mail
        .iter()
        .map(|m| body_text(m))
        .find(|b| b.contains("could not accept"))
        .expect("a refusal email");
    for name in [
        "photo.jpg",
        "invoice.pdf.exe",
        "notes.txt",
        "eicar.txt",
        "huge.png",
    ] {
        assert!(refusal.contains(name), "{name} not named in:\n{refusal}");
    }
    assert!(!refusal.contains("screen.png"), "{refusal}");
    assert!(
        refusal.contains("jpg, png, pdf, txt") && refusal.contains("1 MB"),
        "{refusal}"
    );

    // the agent: the good file attached, the refused ones named
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    let parsed = mail_parser::MessageParser::default()
        .parse(&copy[0])
        .unwrap();
    let names: Vec<String> = parsed
        .attachments()
        .filter_map(|a| mail_parser::MimeHeaders::attachment_name(a).map(str::to_string))
        .collect();
    assert!(names.iter().any(|n| n == "screen.png"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("eicar") || n.contains("photo")),
        "{names:?}"
    );
    assert!(
        body_text(&copy[0]).contains("eicar.txt"),
        "the copy names refused files"
    );

    // events for the webhook issue
    let events: Vec<String> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "attachment.uploaded")
            .count(),
        1,
        "one event for the message's accepted files (2): {events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "attachment.rejected")
            .count(),
        1,
        "one event for the message's refused files (5): {events:?}"
    );
}

#[tokio::test]
async fn a_scanner_that_is_down_refuses_files_as_not_scanned() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let desk = Desk::with(
        "",
        "allowed_extensions = \"png\"",
        &format!("[antivirus]\nclamd = \"tcp://127.0.0.1:{port}\"\ntimeout_seconds = 2\n"),
    );
    let customer = fresh_user("customer");
    let raw = format!(
        "From: {customer}\r\nTo: {}\r\nSubject: One file\r\nMessage-ID: <nav-{}@example.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfile\r\n{}--b--\r\n",
        desk.support,
        support::unique_token(),
        part("screen.png", "image/png", &png())
    );
    deliver_lmtp(&desk.support, raw.as_bytes()).await;
    let out = desk.run_once(None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ANTIVIRUS UNAVAILABLE"),
        "logged loudly"
    );
    let t = desk.ticket(desk.tickets()[0]["ticket_id"].as_i64().unwrap());
    let f = &t["messages"][0]["attachments"][0];
    assert_eq!(f["verdict"], "refused");
    assert_eq!(f["reason_code"], "not_scanned", "{f:#}");
}

/// A message over a few MB is fetched and ingested alone, its raw bytes
/// and its agents' copy go into SQLite by pieces and come back out the
/// same (the memory target of issue 7): the small messages around it are
/// handled as usual, and the agent receives the file byte for byte.
#[tokio::test]
async fn a_big_file_between_small_mails_reaches_the_agent_intact() {
    let r = rig();
    let desk = Desk::with(
        "",
        "allowed_extensions = \"png\"\nmax_size_mb = 10",
        &format!(
            "[antivirus]\nclamd = \"tcp://{}:{}\"\n",
            r.clamd_host, r.clamd_port
        ),
    );
    let customer = fresh_user("customer");
    // 6 MB that do not compress: a big message (8 MB of base64), and an
    // agents' copy far over the size that SQLite gets by pieces
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..6 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let big_file = [png(), noise].concat();
    let mail = |subject: &str, file: Option<&[u8]>| {
        format!(
            "From: {customer}\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: <big-{}@example.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{subject}\r\n{}--b--\r\n",
            desk.support,
            support::unique_token(),
            file.map(|f| part("scan.png", "image/png", f))
                .unwrap_or_default()
        )
    };
    deliver_lmtp(&desk.support, mail("Before", None).as_bytes()).await;
    deliver_lmtp(&desk.support, mail("The scan", Some(&big_file)).as_bytes()).await;
    deliver_lmtp(&desk.support, mail("After", None).as_bytes()).await;

    let out = desk.run_once(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 3, "{tickets:#?}");
    let scan = tickets
        .iter()
        .find(|t| t["subject"] == "The scan")
        .expect("a ticket for the big mail");
    let t = desk.ticket(scan["ticket_id"].as_i64().unwrap());
    let f = &t["messages"][0]["attachments"][0];
    assert_eq!(f["verdict"], "accepted", "{f:#}");
    assert_eq!(f["size"], big_file.len(), "{f:#}");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&big_file))
    };
    assert_eq!(f["sha256"], sha.as_str(), "{f:#}");
    assert!(
        walk(&desk.dir.path().join("files"))
            .iter()
            .any(|p| p.ends_with(&sha))
    );

    // three copies; the big one carries the very bytes
    let copies = wait_for_messages(&desk.agent, 3, WAIT).await;
    let carried: Vec<Vec<u8>> = copies
        .iter()
        .filter_map(|c| {
            let parsed = mail_parser::MessageParser::default().parse(c)?;
            let file = parsed.attachments().next()?;
            mail_parser::MimeHeaders::attachment_name(file)?
                .eq("scan.png")
                .then(|| file.contents().to_vec())
        })
        .collect();
    assert_eq!(carried.len(), 1, "one copy carries the file");
    assert!(
        carried[0] == big_file,
        "the agent got the file byte for byte"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
