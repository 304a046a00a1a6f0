//! First contact with a real mailbox that already holds its history
//! (issue 21), through the real Dovecot and Postfix of the test rig: old
//! read mail stays history, unread mail is taken, old mail never causes
//! automatic mail, `guichet import` turns a folder into tickets silently,
//! and the dry run says beforehand what the pass then does.

mod harness;
mod support;

use std::time::Duration;

use harness::{Desk, message_id};
use support::{append, deliver_lmtp, fetch_all, flags_of_all, fresh_user, unique_token};

const QUIET: Duration = Duration::from_millis(2000);

fn mail(from: &str, to: &str, subject: &str, date: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{}@client.test>\r\n{extra}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello, about {subject}.\r\n",
        unique_token()
    )
    .into_bytes()
}

const OLD_DATE: &str = "Fri, 01 Mar 2024 10:00:00 +0000";
const OLD_ARRIVAL: &str = "01-Mar-2024 10:00:05 +0000";

/// `n` read messages of 2024 from fresh customers, in `folder`.
async fn history(desk: &Desk, folder: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..n {
        let who = fresh_user("past");
        let raw = mail(
            &who,
            &desk.support,
            &format!("Old question {i}"),
            OLD_DATE,
            "",
        );
        append(&desk.support, folder, &raw, "\\Seen", OLD_ARRIVAL).await;
        out.push((who, raw));
    }
    out
}

async fn unread_now(desk: &Desk, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let who = fresh_user("new");
        let now = chrono::Utc::now().to_rfc2822();
        deliver_lmtp(
            &desk.support,
            &mail(&who, &desk.support, &format!("New question {i}"), &now, ""),
        )
        .await;
        out.push(who);
    }
    out
}

fn events(desk: &Desk, id: i64) -> Vec<String> {
    desk.ticket(id)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_first_start_takes_unread_mail_and_mails_no_past_customer() {
    let desk = Desk::new("");
    let past = history(&desk, "INBOX", 6).await;
    let new = unread_now(&desk, 3).await;

    // the dry run says what the pass will do, and changes nothing
    let out = desk.run(&["run", "--once", "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dry["first_contact"], true, "{dry:#}");
    assert_eq!(dry["waiting"], 9, "{dry:#}");
    assert_eq!(dry["would_take"], 3, "{dry:#}");
    assert_eq!(dry["left_as_history"], 6, "{dry:#}");
    assert_eq!(dry["would_open_tickets"], 3, "{dry:#}");
    assert_eq!(
        dry["would_send"], 6,
        "3 acknowledgements and 3 copies: {dry:#}"
    );
    assert!(desk.tickets().is_empty(), "the dry run stored nothing");

    desk.run_once(None);
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 3, "{tickets:#?}");
    tokio::time::sleep(QUIET).await;
    for who in &new {
        assert_eq!(fetch_all(who).await.len(), 1, "{who}: an acknowledgement");
    }
    for (who, _) in &past {
        assert!(fetch_all(who).await.is_empty(), "{who} of 2024 was mailed");
    }
    assert_eq!(
        fetch_all(&desk.agent).await.len(),
        3,
        "a copy per new message"
    );
    // the dry run's counts were the real pass's
    assert_eq!(dry["would_send"], 3 + fetch_all(&desk.agent).await.len());
    // history is left as it was: not flagged, not taken by a later pass
    let flags = flags_of_all(&desk.support).await;
    let flagged = flags
        .iter()
        .filter(|f| f.iter().any(|x| x == "$GuichetDone"))
        .count();
    assert_eq!(flagged, 3, "{flags:?}");
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 3, "history stays history");
}

#[tokio::test]
async fn first_start_all_makes_tickets_of_old_mail_without_any_mail_or_event() {
    let desk = Desk::new("");
    desk.edit_settings(
        "poll_seconds = 1",
        "poll_seconds = 1\nfirst_start = \"all\"",
    );
    let past = history(&desk, "INBOX", 3).await;
    let new = unread_now(&desk, 1).await;
    // it is a first contact too: the dry run and the log say so (they
    // said "first_contact": false, and the log nothing)
    let out = desk.run(&["run", "--once", "--dry-run"]);
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dry["first_contact"], true, "{dry:#}");
    assert_eq!(dry["would_take"], 4, "{dry:#}");
    assert_eq!(dry["left_as_history"], 0, "{dry:#}");
    let out = desk.run(&["run", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("first contact with this mailbox: 4 message(s) taken, 0 left as history"),
        "{log}"
    );
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 4, "{tickets:#?}");
    tokio::time::sleep(QUIET).await;
    for (who, _) in &past {
        assert!(fetch_all(who).await.is_empty(), "{who} of 2024 was mailed");
        let t = tickets
            .iter()
            .find(|t| t["client"] == who.as_str())
            .unwrap();
        assert!(events(&desk, t["ticket_id"].as_i64().unwrap()).is_empty());
    }
    assert_eq!(fetch_all(&new[0]).await.len(), 1);
    assert_eq!(
        fetch_all(&desk.agent).await.len(),
        1,
        "a copy of the new one only"
    );
}

#[tokio::test]
async fn import_turns_a_folder_into_tickets_silently_and_replies_join_them() {
    let desk = Desk::new("");
    let past = history(&desk, "Archive", 2).await;
    let out = desk.run(&["import", "--folder", "Archive"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["new_tickets"], 2, "{report}");
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 2);
    for t in &tickets {
        assert!(events(&desk, t["ticket_id"].as_i64().unwrap()).is_empty());
    }
    // imported again: recognised
    let out = desk.run(&["import", "--folder", "Archive"]);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["already_seen"], 2, "{again}");
    // nothing was sent by the import: a pass has nothing queued
    desk.run_once(None);
    tokio::time::sleep(QUIET).await;
    for (who, _) in &past {
        assert!(fetch_all(who).await.is_empty());
    }
    assert!(fetch_all(&desk.agent).await.is_empty());

    // a customer of 2024 answers their old thread: it joins its ticket
    let (who, old) = &past[0];
    let reply = mail(
        who,
        &desk.support,
        "Re: Old question 0",
        &chrono::Utc::now().to_rfc2822(),
        &format!("In-Reply-To: <{}>\r\n", message_id(old)),
    );
    deliver_lmtp(&desk.support, &reply).await;
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 2, "no new ticket");
    let t = tickets
        .iter()
        .find(|t| t["client"] == who.as_str())
        .unwrap();
    let msgs = desk.ticket(t["ticket_id"].as_i64().unwrap())["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["rule"], "headers");
}
