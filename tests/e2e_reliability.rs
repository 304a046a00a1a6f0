//! What the IMAP server does to a pass (issue 13), through the real
//! Dovecot of the test rig: a message the server cannot give (its file
//! unreadable: Dovecot hangs up in the middle of the FETCH) does not
//! hold up the others and ends as a problem; a mailbox renumbered
//! (UIDVALIDITY changed) is read again without a lost or duplicated
//! ticket or mail.

mod harness;
mod support;

use std::os::unix::fs::PermissionsExt;

use harness::{Desk, mail};
use support::{deliver_lmtp, fetch_all, flags_of_all, fresh_user, maildir, message_file};

fn question(from: &str, to: &str, subject: &str) -> Vec<u8> {
    mail(
        &[("From", from), ("To", to), ("Subject", subject)],
        &format!("Hello, about {subject}.\r\n"),
    )
}

fn subjects(desk: &Desk) -> Vec<String> {
    let mut s: Vec<String> = desk
        .tickets()
        .iter()
        .map(|t| t["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    s.sort();
    s
}

#[tokio::test]
async fn a_message_the_server_cannot_give_does_not_hold_up_the_others_and_ends_as_a_problem() {
    let desk = Desk::new("");
    let customers: Vec<String> = (0..4).map(|_| fresh_user("cust")).collect();
    for (i, who) in customers.iter().enumerate() {
        deliver_lmtp(
            &desk.support,
            &question(who, &desk.support, &format!("Question {i}")),
        )
        .await;
    }
    // Dovecot cannot read the second message's file: it answers the
    // FETCH with `* BYE Internal error` and hangs up
    let broken = message_file(&desk.support, "Question 1");
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o000)).unwrap();

    // a pass may end early (the server hung up), the next goes on; a few
    // passes take every readable message and give up on the broken one
    for _ in 0..6 {
        let out = desk.run(&["run", "--once"]);
        eprintln!("pass: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(
        subjects(&desk),
        ["Question 0", "Question 2", "Question 3"],
        "the readable messages are tickets"
    );
    let problems = desk.json(&["tickets", "problems", "--json"]).to_string();
    assert!(
        problems.contains("UID 2") && problems.contains("would not give"),
        "the broken message is a problem naming its UID and the server's answer: {problems}"
    );
    assert!(
        problems.contains(&desk.support),
        "the problem names the mailbox: {problems}"
    );
    // skipped for good: once readable again it is not taken (it is a
    // recorded problem, the admin's to look at), and passes succeed
    // (flagging renamed the file: Maildir keeps flags in the name)
    let base = broken.file_name().unwrap().to_string_lossy().to_string();
    let base = base.split(':').next().unwrap().to_string();
    let renamed = ["cur", "new"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(maildir(&desk.support).join(sub)).unwrap())
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&base))
        .expect("the broken message is still in the mailbox");
    std::fs::set_permissions(&renamed, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = desk.run(&["run", "--once"]);
    assert!(
        out.status.success(),
        "passes succeed once the message is given up on: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flags = flags_of_all(&desk.support).await;
    assert!(
        flags.iter().all(|f| f.iter().any(|x| x == "$GuichetDone")),
        "every message flagged, the skipped one included: {flags:?}"
    );
    for (i, who) in customers.iter().enumerate() {
        let acks = fetch_all(who).await.len();
        assert_eq!(
            acks,
            usize::from(i != 1),
            "{who} got {acks} acknowledgement(s)"
        );
    }
}

#[tokio::test]
async fn a_renumbered_mailbox_is_read_again_without_loss_or_duplicates() {
    let desk = Desk::new("");
    let (a, b, c) = (fresh_user("a"), fresh_user("b"), fresh_user("c"));
    deliver_lmtp(&desk.support, &question(&a, &desk.support, "First")).await;
    deliver_lmtp(&desk.support, &question(&b, &desk.support, "Second")).await;
    desk.run_once(None);
    assert_eq!(subjects(&desk), ["First", "Second"]);

    // the server forgets its UIDs (a restore, a migration to another
    // server): Dovecot numbers the mailbox again under a new UIDVALIDITY
    let dir = maildir(&desk.support);
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "dovecot-uidlist" || name.starts_with("dovecot.index") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    deliver_lmtp(&desk.support, &question(&c, &desk.support, "Third")).await;
    let out = desk.run_once(None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UIDVALIDITY changed"),
        "the change is logged: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        subjects(&desk),
        ["First", "Second", "Third"],
        "no ticket lost or duplicated"
    );
    for who in [&a, &b, &c] {
        assert_eq!(fetch_all(who).await.len(), 1, "{who}: one acknowledgement");
    }
    // and the pass after that takes nothing again
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 3);
    let flags = flags_of_all(&desk.support).await;
    assert!(
        flags.iter().all(|f| f.iter().any(|x| x == "$GuichetDone")),
        "{flags:?}"
    );
}
