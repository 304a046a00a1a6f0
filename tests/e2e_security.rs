//! Attacks end to end (issue 11), against the real Dovecot and Postfix of
//! the test rig and the real `guichet` binary: a stranger who knows an
//! agent address or a ticket number, a mail with thousands of recipients or
//! files, two robots answering each other through Guichet, header values
//! with line breaks, credentials in the most verbose log, file modes, and a
//! reply token made under another key. Each test failed on the code before
//! the fix it names.

mod harness;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use base64::Engine;
use harness::{Desk, body_text, mail, message_id, reply_to_mail, subject};
use support::{deliver_lmtp, fetch_all, fresh_user, rig, unique_token, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(1500);

fn participants(desk: &Desk, id: i64) -> Vec<String> {
    desk.ticket(id)["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["address"].as_str().unwrap().to_string())
        .collect()
}

/// Opens a ticket from `customer`; returns its id, the acknowledgement and
/// the agents' copy.
async fn open_ticket(desk: &Desk, customer: &str, subject: &str) -> (i64, Vec<u8>, Vec<u8>) {
    let first = mail(
        &[
            ("From", customer),
            ("To", &desk.support),
            ("Subject", subject),
        ],
        "My invoice is wrong.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = desk
        .tickets()
        .iter()
        .find(|t| t["client"] == customer)
        .expect("the customer's ticket")["ticket_id"]
        .as_i64()
        .unwrap();
    let ack = wait_for_messages(customer, 1, WAIT).await.remove(0);
    let copy = wait_for_messages(&desk.agent, 1, WAIT)
        .await
        .into_iter()
        .rev()
        .find(|m| subject_of(m).contains(&format!("[#{id}]")))
        .expect("the copy of the new ticket");
    (id, ack, copy)
}

fn subject_of(raw: &[u8]) -> String {
    subject(raw)
}

/// Issue 11, item 1: a stranger writing `From: <agent>` with the ticket's
/// tag and their own address in Cc, or `From: <customer>` with a known
/// Message-ID, never receives the agent's next answer.
#[tokio::test]
async fn unproven_mail_never_widens_who_receives_a_ticket() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let stranger = fresh_user("stranger");
    let stranger2 = fresh_user("stranger2");
    let (id, _ack, copy) = open_ticket(&desk, &customer, "Invoice 42 is wrong").await;

    // forged agent From, the tag in the subject, the stranger in Cc
    let forged_agent = mail(
        &[
            ("From", &desk.agent),
            ("To", &desk.support),
            ("Cc", &stranger),
            ("Subject", &format!("Re: [#{id}] Invoice 42 is wrong")),
        ],
        "Adding our accountant.",
    );
    deliver_lmtp(&desk.support, &forged_agent).await;
    // forged customer From with a Message-ID of the ticket, another Cc
    let forged_customer = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Cc", &stranger2),
            ("Subject", "Re: Invoice 42 is wrong"),
            ("In-Reply-To", &format!("<{}>", message_id(&copy))),
        ],
        "Please copy my colleague.",
    );
    deliver_lmtp(&desk.support, &forged_customer).await;
    desk.run_once(None);

    let people = participants(&desk, id);
    assert_eq!(people, vec![customer.clone()], "nobody new on ticket {id}");

    // the agent answers from the copy, with its reply token: proven
    let (to, answer) = reply_to_mail(&desk.agent, &copy, "We fixed the invoice.");
    deliver_lmtp(&to, &answer).await;
    desk.run_once(None);
    let got = wait_for_messages(&customer, 2, WAIT).await;
    assert!(body_text(&got[1]).contains("We fixed the invoice"));
    tokio::time::sleep(QUIET).await;
    for s in [&stranger, &stranger2] {
        let theirs: Vec<String> = fetch_all(s).await.iter().map(|m| subject(m)).collect();
        assert!(
            theirs.iter().all(|sub| !sub.contains(&format!("[#{id}]"))),
            "{s} received mail of ticket {id}: {theirs:?}"
        );
    }
}

/// Issue 11, item 1 (cap): a mail with more recipients than the cap makes
/// at most the cap participants, and the agents are told who was left out.
#[tokio::test]
async fn a_ticket_has_a_bounded_number_of_participants() {
    let desk = Desk::new("max_participants = 5");
    let customer = fresh_user("customer");
    let many: Vec<String> = (0..30)
        .map(|i| format!("reader{i}-{}@example.test", unique_token()))
        .collect();
    let first = mail(
        &[
            ("From", &customer),
            ("To", &format!("{}, {}", desk.support, many.join(", "))),
            ("Subject", "Newsletter reply"),
        ],
        "Hello all.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = desk.tickets()[0]["ticket_id"].as_i64().unwrap();
    let people = participants(&desk, id);
    assert_eq!(people.len(), 5, "{people:?}");
    assert!(people.contains(&customer), "{people:?}");
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await.remove(0);
    let text = body_text(&copy);
    assert!(
        text.contains("26 addresses") && text.contains("not added"),
        "the agents are told: {text}"
    );
}

/// Issue 11, item 3: the most verbose log shows no credential, neither in
/// clear nor base64 (lettre logged `AUTH PLAIN <base64>` at debug and
/// async-imap `LOGIN "user" "password"` at trace).
#[tokio::test]
async fn no_log_level_shows_a_password() {
    let r = rig();
    let desk = Desk::new("");
    desk.edit_settings(
        "tls = \"none\"\nfrom =",
        &format!(
            "tls = \"starttls\"\nca_file = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\nfrom =",
            r.ca_file.display(),
            desk.support,
            r.password
        ),
    );
    let customer = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &mail(
            &[
                ("From", &customer),
                ("To", &desk.support),
                ("Subject", "Hi"),
            ],
            "Hello.",
        ),
    )
    .await;
    let out = desk
        .command(&["run", "--once"])
        .env("GUICHET_LOG", "trace")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_messages(&customer, 1, WAIT).await;
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        log.len() > 10_000,
        "trace logging is on: {} bytes",
        log.len()
    );
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user = &desk.support;
    let pw = &r.password;
    for (what, needle) in [
        ("AUTH PLAIN", b64(&format!("\0{user}\0{pw}"))),
        ("AUTH LOGIN password", b64(pw)),
        ("IMAP LOGIN", format!("\"{pw}\"")),
        ("password after the user", format!("{user} {pw}")),
    ] {
        assert!(!log.contains(&needle), "{what} ({needle}) is in the log");
    }
    assert!(
        !log.lines().any(|l| l
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| w == pw.as_str())
            && !l.contains("secret_")),
        "the password appears as a word in the log"
    );
}

/// Issue 11, item 4: everything Guichet creates is private to its user,
/// whatever the umask (the database was 0644).
#[tokio::test]
async fn files_guichet_creates_are_private_whatever_the_umask() {
    use std::os::unix::process::CommandExt;
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let raw = format!(
        "From: {customer}\r\nTo: {support}\r\nSubject: Screenshot\r\nMessage-ID: <{id}@client.test>\r\n\
         Date: {date}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n\
         Content-Type: image/png; name=shot.png\r\nContent-Disposition: attachment; filename=shot.png\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{png}\r\n--b--\r\n",
        support = desk.support,
        id = unique_token(),
        date = chrono::Utc::now().to_rfc2822(),
    );
    deliver_lmtp(&desk.support, raw.as_bytes()).await;
    let mut cmd = desk.command(&["run", "--once"]);
    // SAFETY: umask is async-signal-safe; runs in the child before exec
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut checked = 0;
    let mut walk = vec![desk.dir.path().to_path_buf()];
    while let Some(dir) = walk.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path == desk.config {
                continue; // written by the test
            }
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            if path.is_dir() {
                assert_eq!(mode, 0o700, "{}", path.display());
                walk.push(path);
            } else {
                assert_eq!(mode, 0o600, "{}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "the database, its files and a stored file: {checked}"
    );
}

/// A multipart mail with `n` tiny PNG files.
fn many_files(from: &str, to: &str, n: usize) -> Vec<u8> {
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let mut raw = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Many screenshots\r\nMessage-ID: <{id}@client.test>\r\n\
         Date: {date}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n",
        id = unique_token(),
        date = chrono::Utc::now().to_rfc2822(),
    );
    for i in 0..n {
        raw.push_str(&format!(
            "--b\r\nContent-Type: image/png; name=s{i}.png\r\nContent-Disposition: attachment; \
             filename=s{i}.png\r\nContent-Transfer-Encoding: base64\r\n\r\n{png}\r\n"
        ));
    }
    raw.push_str("--b--\r\n");
    raw.into_bytes()
}

/// Issue 11, item 5: a maximum number of files per message; the rest are
/// refused with a clear reason, and one message's files are one event of
/// each kind, not one per file.
#[tokio::test]
async fn files_beyond_the_limit_are_refused_and_make_one_event() {
    let desk = Desk::with("", "max_files = 4", "");
    let customer = fresh_user("customer");
    deliver_lmtp(&desk.support, &many_files(&customer, &desk.support, 7)).await;
    desk.run_once(None);
    let id = desk.tickets()[0]["ticket_id"].as_i64().unwrap();
    let t = desk.ticket(id);
    let files = t["messages"][0]["attachments"].as_array().unwrap().clone();
    assert_eq!(files.len(), 7);
    let accepted = files.iter().filter(|f| f["verdict"] == "accepted").count();
    assert_eq!(accepted, 4, "{files:#?}");
    let refused: Vec<&serde_json::Value> =
        files.iter().filter(|f| f["verdict"] == "refused").collect();
    assert_eq!(refused.len(), 3);
    for f in &refused {
        let reason = f["reason"].as_str().unwrap_or("");
        assert!(reason.contains("more than 4 files"), "{reason}");
    }
    let events: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "ticket.created",
            "attachment.uploaded",
            "attachment.rejected"
        ],
        "one event per kind for one message's files"
    );
    // the customer's refusal notice names the limit
    let got = wait_for_messages(&customer, 1, WAIT).await;
    let text = got.iter().map(|m| body_text(m)).collect::<String>();
    assert!(text.contains("s6.png"), "{text}");
}

/// Issue 11, item 6: an agent's naive vacation robot (no Auto-Submitted)
/// and a customer's naive auto-responder answer each other through
/// Guichet: identical bodies are relayed once, the loop stops, the agent is
/// told; relays per ticket are rate-limited.
#[tokio::test]
async fn two_robots_answering_each_other_through_guichet_stop() {
    let desk = Desk::new("max_relays_per_hour = 6");
    let customer = fresh_user("customer");
    let (_id, _ack, _copy) = open_ticket(&desk, &customer, "Order 7").await;
    let mut seen_agent = 0;
    let mut seen_customer = 0;
    let mut quiet_rounds = 0;
    for _round in 0..14 {
        let agent_mail = fetch_all(&desk.agent).await;
        let customer_mail = fetch_all(&customer).await;
        let new = agent_mail.len() - seen_agent + customer_mail.len() - seen_customer;
        if new == 0 {
            quiet_rounds += 1;
            if quiet_rounds == 2 {
                break;
            }
        } else {
            quiet_rounds = 0;
        }
        for m in &agent_mail[seen_agent..] {
            let (to, r) = reply_to_mail(&desk.agent, m, "I am out of the office until Monday.");
            deliver_lmtp(&to, &r).await;
        }
        for m in &customer_mail[seen_customer..] {
            let (to, r) = reply_to_mail(&customer, m, "Thank you, we received your message.");
            deliver_lmtp(&to, &r).await;
        }
        seen_agent = agent_mail.len();
        seen_customer = customer_mail.len();
        desk.run_once(None);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert_eq!(quiet_rounds, 2, "the robots still talk after 14 rounds");
    let relayed = fetch_all(&customer)
        .await
        .iter()
        .filter(|m| body_text(m).contains("out of the office"))
        .count();
    assert_eq!(relayed, 1, "the identical answer was relayed once");
    let told = fetch_all(&desk.agent)
        .await
        .iter()
        .any(|m| body_text(m).contains("identical"));
    assert!(told, "the agent is told why");
}

/// Issue 11, item 6 (rate): distinct answers beyond the hourly limit of
/// relays on one ticket are held, and the agent is told.
#[tokio::test]
async fn relays_per_ticket_are_rate_limited() {
    let desk = Desk::new("max_relays_per_hour = 2");
    let customer = fresh_user("customer");
    let (_id, _ack, copy) = open_ticket(&desk, &customer, "Order 8").await;
    for i in 0..3 {
        let (to, r) = reply_to_mail(&desk.agent, &copy, &format!("Answer number {i}."));
        deliver_lmtp(&to, &r).await;
    }
    desk.run_once(None);
    tokio::time::sleep(QUIET).await;
    let got = fetch_all(&customer).await;
    let answers = got
        .iter()
        .filter(|m| body_text(m).contains("Answer number"))
        .count();
    assert_eq!(answers, 2, "two relays in the hour");
    let told = fetch_all(&desk.agent)
        .await
        .iter()
        .any(|m| body_text(m).contains("Answer number 2") || body_text(m).contains("per hour"));
    assert!(told, "the agent is told");
}

/// Issue 11, item 7: line breaks inside an encoded subject or name never
/// spill into the bodies of the acknowledgement and the copy.
#[tokio::test]
async fn line_breaks_in_encoded_subjects_and_names_stay_on_one_line() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let raw = mail(
        &[
            (
                "From",
                &format!("=?utf-8?q?Eve=0D=0AINJECTED_NAME?= <{customer}>"),
            ),
            ("To", &desk.support),
            (
                "Subject",
                "=?utf-8?q?Printer_broken=0D=0A=0D=0AINJECTED_SUBJECT_please_pay?=",
            ),
        ],
        "Hello.",
    );
    deliver_lmtp(&desk.support, &raw).await;
    desk.run_once(None);
    let ack = wait_for_messages(&customer, 1, WAIT).await.remove(0);
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await.remove(0);
    for (who, m) in [("ack", &ack), ("copy", &copy)] {
        let text = body_text(m);
        for line in text.lines() {
            assert!(
                !line.trim_start().starts_with("INJECTED"),
                "{who}: a header value spilled into the body:\n{text}"
            );
        }
    }
    let t = &desk.tickets()[0];
    assert!(!t["subject"].as_str().unwrap().contains('\n'), "{t}");
}

/// Issue 11, item 8: `init` writes a random secret to a private file that
/// the settings name, and keeps it on a second init; a reply carrying a
/// token made under another key is logged as such.
#[tokio::test]
async fn init_keeps_one_private_secret_and_a_stale_token_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("guichet.toml");
    let init = |force: bool| {
        let mut c = std::process::Command::new(support::guichet_bin());
        c.args(["init", "--preset", "startup", "--output"])
            .arg(&config);
        if force {
            c.arg("--force");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    init(false);
    let secret_path = dir.path().join("guichet.secret");
    let secret = std::fs::read_to_string(&secret_path).expect("init writes guichet.secret");
    assert!(secret.trim().len() >= 32, "{secret:?}");
    let mode = std::fs::metadata(&secret_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("secret_file = \"guichet.secret\""), "{text}");
    assert!(!text.contains("GUICHET_SECRET"), "{text}");
    init(true);
    assert_eq!(
        std::fs::read_to_string(&secret_path).unwrap(),
        secret,
        "a second init keeps the secret (or every reply token dies)"
    );

    // a reply whose token was made under the old key
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let (id, ack, _copy) = open_ticket(&desk, &customer, "Key change").await;
    desk.edit_settings(harness::SECRET, "a-completely-new-secret-0123456789");
    let (to, reply) = reply_to_mail(&customer, &ack, "Any news?");
    deliver_lmtp(&to, &reply).await;
    let out = desk.run(&["run", "--once"]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("another key") && log.contains(&format!("ticket {id}")),
        "the stale token is logged: {log}"
    );
}

/// Issue 11, item 2: a preset trusts nobody, and check-config refuses
/// every placeholder left from it with its line and what to put there.
#[test]
fn a_preset_left_as_written_is_refused_with_each_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("guichet.toml");
    for preset in ["startup", "enterprise", "technical", "secure"] {
        let out = std::process::Command::new(support::guichet_bin())
            .args(["init", "--force", "--preset", preset, "--output"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(
            text.contains("authserv_ids = []"),
            "{preset} trusts no one:\n{text}"
        );
        let out = std::process::Command::new(support::guichet_bin())
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .env("GUICHET_IMAP_PASSWORD", "x")
            .env("GUICHET_SMTP_PASSWORD", "y")
            .env(
                "GUICHET_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{preset}: {err}");
        for key in [
            "imap.host",
            "smtp.host",
            "imap.username",
            "departments[0].address",
        ] {
            assert!(
                err.contains(&format!("{key}: placeholder")),
                "{preset}: {key} not refused:\n{err}"
            );
        }
        assert!(err.contains("guichet.toml:"), "with file and line: {err}");
    }
}

/// Sanity of the helper above: `subject` reads a decoded subject.
#[test]
fn the_subject_helper_decodes() {
    let m = mail(&[("Subject", "=?utf-8?q?Caf=C3=A9?=")], "x");
    assert_eq!(subject(&m), "Café");
}
