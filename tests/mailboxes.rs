//! Several mailboxes (issue 14): `[imap]` and `[[mailboxes]]` each have
//! their own login, UID checkpoint and IDLE loop, and feed their
//! department; one that cannot log in leaves the others working.

mod harness;
mod support;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::Desk;
use support::{deliver_lmtp, fetch_all, fresh_user, rig, simple_message, wait_for_messages};

const WAIT: Duration = Duration::from_secs(30);

fn mailbox(name: &str, user: &str, password: &str, department: &str) -> String {
    let r = rig();
    format!(
        "[[mailboxes]]\nname = \"{name}\"\nhost = \"{}\"\nport = {}\ntls = \"none\"\nusername = \"{user}\"\npassword = \"{password}\"\npoll_seconds = 1\ndepartment = \"{department}\"\n\n",
        r.imap_host, r.imap_port
    )
}

#[tokio::test]
async fn two_mailboxes_feed_two_departments_and_a_broken_one_leaves_them_working() {
    let sales = fresh_user("sales");
    let shared = fresh_user("shared");
    let broken = fresh_user("broken");
    let sales_agent = fresh_user("agent");
    let extra = format!(
        "[[departments]]\nname = \"Sales\"\naddress = \"{sales}\"\nagents = [\"{sales_agent}\"]\n\n{}{}",
        mailbox("sales", &shared, &rig().password, "Sales"),
        mailbox("broken", &broken, "not-the-password", "Support"),
    );
    let desk = Desk::with("", "", &extra);
    let agents = format!("agents = [\"{}\"]", desk.agent);
    desk.edit_settings(&agents, &format!("{agents}\ndefault = true"));
    let check = desk.run(&["check-config"]);
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        shown.contains("[[mailboxes]]\nname = \"sales\"\ndepartment = \"Sales\""),
        "{shown}"
    );
    assert!(!shown.contains("not-the-password"), "masked: {shown}");

    let mut child = desk
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let c1 = fresh_user("customer");
    let c2 = fresh_user("customer");
    let c3 = fresh_user("customer");
    // to the support address: the [imap] mailbox, department by recipient
    deliver_lmtp(
        &desk.support,
        &simple_message(&c1, &desk.support, "Printer", "jammed"),
    )
    .await;
    // into the shared mailbox, addressed to some alias: it feeds Sales
    deliver_lmtp(
        &shared,
        &simple_message(&c2, "info@example.net", "Quote", "price?"),
    )
    .await;
    // into the broken mailbox: waits on the server
    deliver_lmtp(&broken, &simple_message(&c3, &broken, "Lost?", "no")).await;

    let start = Instant::now();
    let tickets = loop {
        let t = desk.tickets();
        if t.len() >= 2 || start.elapsed() > WAIT {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // a second message to the working mailbox while the broken one retries
    tokio::time::sleep(Duration::from_secs(3)).await;
    deliver_lmtp(
        &shared,
        &simple_message(&c2, "info@example.net", "Quote 2", "again"),
    )
    .await;
    let start = Instant::now();
    while desk.tickets().len() < 3 && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();

    let dept = |subject: &str| {
        desk.tickets()
            .into_iter()
            .find(|t| t["subject"].as_str().is_some_and(|s| s.contains(subject)))
            .map(|t| t["department"].as_str().unwrap_or("").to_string())
    };
    assert!(tickets.len() >= 2, "{tickets:?}\n{logs}");
    assert_eq!(dept("Printer").as_deref(), Some("Support"), "{logs}");
    assert_eq!(dept("Quote").as_deref(), Some("Sales"), "{logs}");
    assert_eq!(
        dept("Quote 2").as_deref(),
        Some("Sales"),
        "the shared mailbox kept working: {logs}"
    );
    assert_eq!(desk.tickets().len(), 3);
    assert!(dept("Lost?").is_none());
    assert!(
        logs.lines()
            .any(|l| l.contains("IMAP connection failed") && l.contains("broken")),
        "the broken mailbox is named: {logs}"
    );
    assert_eq!(
        fetch_all(&broken).await.len(),
        1,
        "its mail waits on the server"
    );
    // Sales' agent got the copy of the Sales ticket
    assert!(!wait_for_messages(&sales_agent, 1, WAIT).await.is_empty());

    // each mailbox has its own checkpoint: a second pass takes nothing again
    let out = desk.run(&["run", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("broken"),
        "--once names the broken mailbox: {err}"
    );
    assert_eq!(desk.tickets().len(), 3, "no duplicates: {err}");
}

#[tokio::test]
async fn dry_run_reports_every_mailbox_and_import_takes_the_one_named() {
    let shared = fresh_user("shared");
    let desk = Desk::with(
        "",
        "",
        &mailbox("sales", &shared, &rig().password, "Support"),
    );
    let c1 = fresh_user("customer");
    let c2 = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &simple_message(&c1, &desk.support, "One", "first"),
    )
    .await;
    deliver_lmtp(&shared, &simple_message(&c2, &shared, "Two", "second")).await;
    deliver_lmtp(&shared, &simple_message(&c2, &shared, "Three", "third")).await;

    // before: only the [imap] mailbox was looked at
    let out = desk.run(&["run", "--once", "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reports = report.as_array().expect("one report per mailbox");
    let taken: Vec<(&str, u64)> = reports
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["would_take"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(taken, [("imap", 1), ("sales", 2)]);
    assert!(desk.tickets().is_empty(), "a dry run changes nothing");

    // import from the named mailbox only; an unknown name is refused
    let out = desk.run(&["import", "--mailbox", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no mailbox named `nope` (the settings have: imap, sales)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = desk.run(&["import", "--mailbox", "sales"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut subjects: Vec<String> = desk
        .tickets()
        .iter()
        .map(|t| t["subject"].as_str().unwrap().to_string())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["Three", "Two"]);
    assert!(fetch_all(&c2).await.is_empty(), "an import sends nothing");
}
