//! `guichet explain FILE.eml --json` through the real binary, against a
//! desk that holds a known ticket: for crafted messages it names the
//! threading rule that matched and why each earlier one did not, the sender
//! class, the robot classification and the header that decided it, each
//! attachment's verdict and what would be sent to whom; and it changes
//! nothing (every table of the store is the same before and after, no file
//! is stored, no mail is sent).

mod harness;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use harness::{Desk, message_id, subject};
use serde_json::Value;
use support::{deliver_lmtp, fetch_all, fresh_user, unique_token, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);
const TRUSTED: &str = "mx.rig.example.test";

/// Every table's row count and every ticket's state: what explain must
/// leave as it found it.
async fn snapshot(desk: &Desk) -> BTreeMap<String, String> {
    let url = format!("sqlite://{}", desk.dir.path().join("guichet.db").display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open the desk's db");
    let mut out = BTreeMap::new();
    for table in [
        "tickets",
        "participants",
        "raw_messages",
        "messages",
        "known_message_ids",
        "attachments",
        "ticket_events",
        "outbox_mail",
        "webhook_outbox",
        "mailbox_state",
        "auto_replies",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("count {table}: {e}"));
        out.insert(table.to_string(), n.to_string());
    }
    let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT id, status, priority, department, last_activity_at FROM tickets ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (id, status, priority, department, last) in rows {
        out.insert(
            format!("ticket {id}"),
            format!("{status} {priority} {department} {last}"),
        );
    }
    let files = walk_count(&desk.dir.path().join("files"));
    out.insert("stored files".into(), files.to_string());
    pool.close().await;
    out
}

fn walk_count(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            if e.path().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Runs `explain --json` on `raw` and checks that nothing changed.
async fn explain(desk: &Desk, raw: &[u8]) -> Value {
    let before = snapshot(desk).await;
    let path = desk.dir.path().join(format!("m-{}.eml", unique_token()));
    std::fs::write(&path, raw).unwrap();
    let v = desk.json(&["explain", path.to_str().unwrap(), "--json"]);
    let after = snapshot(desk).await;
    assert_eq!(before, after, "explain changed the store: {v:#}");
    v
}

fn steps<'a>(v: &'a Value, stage: &str) -> Vec<&'a Value> {
    v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stage"] == stage)
        .collect()
}

/// The threading lines, in order, and the data of the deciding one.
fn threading(v: &Value) -> (Vec<String>, Value) {
    let lines = steps(v, "threading");
    let text = lines
        .iter()
        .map(|s| s["decision"].as_str().unwrap().to_string())
        .collect();
    let data = lines
        .iter()
        .rev()
        .find_map(|s| s.get("data").cloned())
        .unwrap_or(Value::Null);
    (text, data)
}

fn one<'a>(v: &'a Value, stage: &str) -> &'a Value {
    let s = steps(v, stage);
    assert_eq!(s.len(), 1, "one {stage} step: {v:#}");
    &s[0]["data"]
}

/// `(kind, to, cc)` of every mail the message would cause.
fn sends(v: &Value) -> Vec<(String, Vec<String>, Vec<String>)> {
    let list = |x: &Value| -> Vec<String> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let d = s.get("data")?;
            let kind = d.get("send")?.as_str()?.to_string();
            Some((kind, list(&d["to"]), list(&d["cc"])))
        })
        .collect()
}

fn mail(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = String::new();
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Message-ID: <{}@client.test>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        unique_token(),
        chrono::Utc::now().to_rfc2822()
    ));
    out.into_bytes()
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn explain_names_every_decision_and_changes_nothing() {
    let desk = Desk::with(
        "",
        "",
        &format!("[trust]\nauthserv_ids = [\"{TRUSTED}\"]\n"),
    );
    let agent = desk.agent.clone();
    let agent_domain = agent.split('@').nth(1).unwrap().to_string();
    let customer = fresh_user("customer");
    let colleague = fresh_user("colleague");
    let stranger = fresh_user("stranger");
    let first = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Cc", &colleague),
            ("Subject", "Printer on fire"),
        ],
        "My printer is on fire.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = desk.tickets()[0]["ticket_id"].as_i64().unwrap();
    let tag = format!("[#{id}]");
    let ack = wait_for_messages(&customer, 1, WAIT).await.remove(0);
    let copy = wait_for_messages(&agent, 1, WAIT).await.remove(0);
    let token_address = harness::header(&copy, "Reply-To").unwrap();
    let token_address = token_address
        .rsplit_once('<')
        .map(|(_, a)| a.trim_end_matches('>').to_string())
        .unwrap_or(token_address);

    // 1. already seen
    let v = explain(&desk, &first).await;
    assert_eq!(v["outcome"]["outcome"], "already_seen", "{v:#}");
    assert!(
        steps(&v, "threading")[0]["decision"]
            .as_str()
            .unwrap()
            .starts_with("1 already seen")
    );

    // 2. the customer answers the acknowledgement: rule 3, headers
    let reply = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", &format!("Re: {}", subject(&ack))),
            ("In-Reply-To", &format!("<{}>", message_id(&ack))),
        ],
        "It is still burning.",
    );
    let v = explain(&desk, &reply).await;
    let (lines, data) = threading(&v);
    assert_eq!(data["rule"], "headers", "{v:#}");
    assert_eq!(data["ticket_id"], id);
    assert!(lines[0].starts_with("1 already seen: no"), "{lines:#?}");
    assert!(lines[1].starts_with("2 reply token: no"), "{lines:#?}");
    assert!(
        lines[2].starts_with("3 headers:") && lines[2].contains(&message_id(&ack)),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 3, "rule 3 decided, 4 and 5 not tried");
    assert_eq!(one(&v, "sender")["class"], "customer");
    let robot = one(&v, "robot");
    assert_eq!(robot["kind"], "human");
    assert_eq!(robot["may_answer"], true);
    assert_eq!(
        v["outcome"],
        serde_json::json!({"outcome": "ticket", "ticket_id": id, "rule": "headers", "created": false})
    );
    assert_eq!(
        sends(&v),
        [("agent_copy".to_string(), vec![agent.clone()], vec![])],
        "a copy to the agent, no acknowledgement for a reply"
    );

    // 3. the agent answers from the copy: rule 2, token; relayed to the
    // customer and the Cc'd colleague
    let answer = mail(
        &[
            ("From", &agent),
            ("To", &token_address),
            ("Subject", &format!("Re: {}", subject(&copy))),
            ("In-Reply-To", &format!("<{}>", message_id(&copy))),
        ],
        "Please unplug it.\n\nOn Monday, Support wrote:\n> My printer is on fire.\n\n-- \nAgent",
    );
    let v = explain(&desk, &answer).await;
    let (lines, data) = threading(&v);
    assert_eq!(data["rule"], "token", "{v:#}");
    assert!(
        lines[1].contains(&format!("names ticket {id}")),
        "{lines:#?}"
    );
    let sender = one(&v, "sender");
    assert_eq!(sender["class"], "agent");
    assert_eq!(sender["proof"], "valid reply token");
    assert_eq!(
        sends(&v),
        [(
            "agent_reply".to_string(),
            vec![customer.clone()],
            vec![colleague.clone()]
        )]
    );
    let agent_line = steps(&v, "agent")[0]["decision"].as_str().unwrap();
    assert!(
        agent_line.contains("quote removed: true")
            && agent_line.contains("signature removed: true"),
        "{agent_line}"
    );

    // 4. a stranger naming the ticket: rule 4 refuses (anti-hijack), a new
    // ticket, acknowledged
    let guess = mail(
        &[
            ("From", &stranger),
            ("To", &desk.support),
            ("Subject", &format!("Re: {tag} Printer on fire")),
        ],
        "What is the status?",
    );
    let v = explain(&desk, &guess).await;
    let (lines, data) = threading(&v);
    assert_eq!(data["rule"], "new", "{v:#}");
    assert_eq!(data["ticket_id"], Value::Null);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[2].contains("no In-Reply-To or References"),
        "{lines:#?}"
    );
    assert!(
        lines[3].contains("not one of its participants") && lines[3].contains("anti-hijack"),
        "{lines:#?}"
    );
    assert_eq!(v["outcome"]["created"], true);
    assert_eq!(
        sends(&v),
        [
            (
                "acknowledgement".to_string(),
                vec![stranger.clone()],
                vec![]
            ),
            ("agent_copy".to_string(), vec![agent.clone()], vec![]),
        ]
    );

    // 5. the Cc'd colleague naming the ticket: rule 4 accepts
    let colleague_mail = mail(
        &[
            ("From", &colleague),
            ("To", &desk.support),
            ("Subject", &format!("{tag} it spread to the scanner")),
        ],
        "And now the scanner.",
    );
    let v = explain(&desk, &colleague_mail).await;
    let (lines, data) = threading(&v);
    assert_eq!(data["rule"], "subject_tag", "{v:#}");
    assert!(lines[3].contains("the sender takes part"), "{lines:#?}");

    // 6. a spoofed agent: kept as unverified, never relayed, and the real
    // agent is told how to reply so that it counts (issue 12)
    let spoof = mail(
        &[
            ("From", &agent),
            ("To", &desk.support),
            ("Subject", &format!("Re: {tag} Printer on fire")),
            ("In-Reply-To", &format!("<{}>", message_id(&first))),
            (
                "Authentication-Results",
                &format!("elsewhere.example; dkim=pass header.d={agent_domain}"),
            ),
        ],
        "Please wire the repair fee to this account.",
    );
    let v = explain(&desk, &spoof).await;
    let sender = one(&v, "sender");
    assert_eq!(sender["class"], "spoofed_agent", "{v:#}");
    let why = sender["why"].as_str().unwrap();
    assert!(
        why.contains("no valid reply token") && why.contains("untrusted elsewhere.example"),
        "{why}"
    );
    assert_eq!(threading(&v).1["rule"], "headers");
    assert_eq!(
        sends(&v),
        [("agent_notice".to_string(), vec![agent.clone()], vec![])],
        "not relayed to the customer"
    );

    // 7. the agent authenticated by the trusted server's DKIM pass
    let signed = mail(
        &[
            (
                "Authentication-Results",
                &format!("{TRUSTED}; dkim=pass header.d={agent_domain}"),
            ),
            ("From", &agent),
            ("To", &desk.support),
            ("Subject", &format!("{tag} update")),
        ],
        "The technician comes tomorrow.",
    );
    let v = explain(&desk, &signed).await;
    let sender = one(&v, "sender");
    assert_eq!(sender["class"], "agent", "{v:#}");
    let proof = sender["proof"].as_str().unwrap();
    assert!(
        proof.contains("dkim=pass") && proof.contains(TRUSTED),
        "{proof}"
    );
    assert_eq!(threading(&v).1["rule"], "subject_tag");
    assert_eq!(sends(&v)[0].0, "agent_reply");

    // 8. Exchange's out-of-office: appended, answered by nothing
    let ooo = mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", &format!("Automatic reply: {}", subject(&ack))),
            ("In-Reply-To", &format!("<{}>", message_id(&ack))),
            ("X-MS-Exchange-Inbox-Rules-Loop", &customer),
            ("X-Auto-Response-Suppress", "All"),
        ],
        "I am out of the office.",
    );
    let v = explain(&desk, &ooo).await;
    let robot = one(&v, "robot");
    assert_eq!(robot["kind"], "auto-reply", "{v:#}");
    assert_eq!(robot["may_answer"], false);
    assert!(
        robot["decided_by"]
            .as_str()
            .unwrap()
            .starts_with("X-MS-Exchange-Inbox-Rules-Loop"),
        "{robot}"
    );
    assert_eq!(v["outcome"]["ticket_id"], id);
    assert!(sends(&v).is_empty(), "{v:#}");

    // 9. the acknowledgement bounced: recorded on the ticket
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.test\r\nTo: {support}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{mid}@mx.example.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
         Final-Recipient: rfc822; {customer}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --b\r\nContent-Type: message/rfc822\r\n\r\n\
         From: {support}\r\nTo: {customer}\r\nSubject: {subj}\r\nMessage-ID: <{ack_id}>\r\n\
         X-Guichet-Mail: t{id}\r\n\r\nThank you for your message.\r\n--b--\r\n",
        support = desk.support,
        mid = unique_token(),
        subj = subject(&ack),
        ack_id = message_id(&ack),
    );
    let v = explain(&desk, dsn.as_bytes()).await;
    let robot = one(&v, "robot");
    assert_eq!(robot["kind"], "bounce", "{v:#}");
    assert!(
        robot["decided_by"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("report"),
        "{robot}"
    );
    assert_eq!(
        v["outcome"],
        serde_json::json!({"outcome": "ticket", "ticket_id": id, "rule": "bounce", "created": false})
    );
    assert!(
        steps(&v, "bounce")[0]["decision"]
            .as_str()
            .unwrap()
            .contains(&message_id(&ack))
    );
    assert!(sends(&v).is_empty());

    // 10. a new customer's files: each verdict, one refusal notice
    let png = base64::engine::general_purpose::STANDARD.encode(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89",
    );
    let pe = base64::engine::general_purpose::STANDARD
        .encode(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00PE\x00\x00");
    let newcomer = fresh_user("newcomer");
    let with_files = format!(
        "From: {newcomer}\r\nTo: {support}\r\nSubject: Screenshots\r\nMessage-ID: <{mid}@client.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"f\"\r\n\r\n\
         --f\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
         --f\r\nContent-Type: image/png; name=\"screen.png\"\r\nContent-Disposition: attachment; filename=\"screen.png\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{png}\r\n\
         --f\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename=\"photo.jpg\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{pe}\r\n\
         --f\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{pe}\r\n--f--\r\n",
        support = desk.support,
        mid = unique_token(),
    );
    let v = explain(&desk, with_files.as_bytes()).await;
    let verdicts: Vec<(String, String, Value)> = steps(&v, "attachment")
        .iter()
        .map(|s| {
            let d = &s["data"];
            (
                d["filename"].as_str().unwrap().to_string(),
                d["verdict"].as_str().unwrap().to_string(),
                d["reason_code"].clone(),
            )
        })
        .collect();
    assert_eq!(verdicts.len(), 3, "{v:#}");
    assert_eq!(
        verdicts[0],
        ("screen.png".into(), "accepted".into(), Value::Null)
    );
    assert_eq!(verdicts[1].0, "photo.jpg");
    assert_eq!(verdicts[1].1, "refused");
    assert!(
        matches!(
            verdicts[1].2.as_str(),
            Some("executable" | "content_mismatch")
        ),
        "{verdicts:?}"
    );
    assert_eq!(
        verdicts[2],
        (
            "invoice.pdf.exe".into(),
            "refused".into(),
            Value::from("extension_not_allowed")
        )
    );
    let kinds: Vec<(String, Vec<String>)> =
        sends(&v).into_iter().map(|(k, to, _)| (k, to)).collect();
    assert_eq!(
        kinds,
        [
            // the refusals ride in the acknowledgement: one mail (issue 12)
            ("acknowledgement".to_string(), owned(&[&newcomer])),
            ("agent_copy".to_string(), owned(&[&agent])),
        ]
    );

    // the text form says the same and that it was a dry run
    let path = desk.dir.path().join("text.eml");
    std::fs::write(&path, &guess).unwrap();
    let out = desk.run(&["explain", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("anti-hijack"), "{text}");
    assert!(
        text.contains("dry run: nothing was stored or sent"),
        "{text}"
    );

    // and nothing was sent to anyone
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for (who, n) in [
        (&customer, 1),
        (&agent, 1),
        (&colleague, 0),
        (&stranger, 0),
        (&newcomer, 0),
    ] {
        assert_eq!(fetch_all(who).await.len(), n, "{who}");
    }
    assert_eq!(desk.tickets().len(), 1);
}
