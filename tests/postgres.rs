//! PostgreSQL end to end: the same behaviour as SQLite, and no double
//! processing when several daemons share one database and one mailbox.
//!
//! - One story (a customer's mail → ticket, acknowledgement and agent copy;
//!   a second pass that changes nothing; the agent's reply relayed; the
//!   auto-close with `--now`) is told on SQLite and on PostgreSQL, and the
//!   two `tickets show --json` (and `stats`, `tickets list`, `explain`,
//!   `tickets problems`) must be equal once ids, times and the per-test
//!   addresses are masked.
//! - The crash hook (`GUICHET_TEST_CRASH_AFTER_COMMIT`) on PostgreSQL.
//! - Two `guichet run --once` started together on ~50 waiting messages:
//!   one ticket per message, every acknowledgement, agent copy and webhook
//!   sent exactly once, then two concurrent auto-close sweeps closing each
//!   ticket once.
//!
//! `GUICHET_TEST_BACKEND=postgres cargo test --test e2e_foundation` runs
//! the foundation file itself on PostgreSQL too (see tests/harness).

mod harness;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{Desk, body_text, header, subject};
use serde_json::Value;
use support::{
    deliver_lmtp, fetch_all, flags_of_all, fresh_pg_database, fresh_user, guichet_bin,
    simple_message, unique_token, wait_for_messages,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const WAIT: Duration = Duration::from_secs(30);

fn success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pass report `run --once` prints on stdout.
fn report(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("run --once report ({e}): {text}"))
}

/// Lines of a log that are warnings or errors.
fn problems_in_log(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .map(str::to_string)
        .collect()
}

// ------------------------------------------------------------ one story, two backends

/// The story, with its checks along the way; returns `tickets show --json`
/// of its ticket.
async fn story(desk: &Desk, customer: &str) -> Value {
    let backend = if desk.database_url().starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let mail = simple_message(
        customer,
        &desk.support,
        "Printer on fire",
        "Hello,\nmy printer is on fire.\nAnn",
    );
    deliver_lmtp(&desk.support, &mail).await;
    desk.run_once(None);

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1, "{backend}: {tickets:#?}");
    let id = tickets[0]["ticket_id"].as_i64().unwrap();
    assert_eq!(tickets[0]["status"], "open", "{backend}");
    let ack = wait_for_messages(customer, 1, WAIT).await;
    assert!(
        subject(&ack[0]).contains(&format!("[#{id}]")),
        "{backend}: ack subject {}",
        subject(&ack[0])
    );
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    let reply_to = header(&copy[0], "Reply-To").unwrap_or_default();
    assert!(
        reply_to.contains(&format!("+t{id}.")),
        "{backend}: Reply-To {reply_to}"
    );
    assert!(
        flags_of_all(&desk.support)
            .await
            .iter()
            .all(|f| f.iter().any(|x| x == "$GuichetDone")),
        "{backend}: flagged"
    );

    // a second pass creates nothing and sends nothing
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 1, "{backend}");

    // the agent answers from their mail client, to the copy's Reply-To
    let token_address = match (reply_to.find('<'), reply_to.rfind('>')) {
        (Some(start), Some(end)) => reply_to[start + 1..end].to_string(),
        _ => reply_to.clone(),
    };
    let answer = format!(
        "From: {agent}\r\nTo: {token_address}\r\nSubject: Re: {subj}\r\n\
         Message-ID: <a-{tok}@agent.example.test>\r\nIn-Reply-To: {copy_id}\r\n\
         Date: {date}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Please unplug it and call the fire brigade.\r\n\r\n\
         On Mon, 2 Mar 2026, Guichet wrote:\r\n> my printer is on fire.\r\n",
        agent = desk.agent,
        subj = subject(&copy[0]),
        tok = unique_token(),
        copy_id = header(&copy[0], "Message-ID").unwrap_or_default(),
        date = chrono::Utc::now().to_rfc2822(),
    );
    deliver_lmtp(&desk.support, answer.as_bytes()).await;
    desk.run_once(None);
    let relayed = wait_for_messages(customer, 2, WAIT).await;
    let text = body_text(&relayed[1]);
    assert!(
        text.contains("Please unplug it") && !text.contains("> my printer"),
        "{backend}: relayed without the quote: {text}"
    );
    assert!(
        subject(&relayed[1]).contains(&format!("[#{id}]")),
        "{backend}"
    );
    assert_eq!(
        desk.tickets()[0]["status"],
        "awaiting_customer",
        "{backend}"
    );

    // eight days later the sweep closes it and tells the customer
    let later = (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339();
    let out = desk.run_once(Some(&later));
    assert_eq!(report(&out)["auto_closed"], 1, "{backend}");
    let notice = wait_for_messages(customer, 3, WAIT).await;
    assert!(
        subject(&notice[2]).contains(&format!("[#{id}]")),
        "{backend}: closing notice {}",
        subject(&notice[2])
    );
    // nothing more the pass after
    let out = desk.run_once(Some(&later));
    assert_eq!(report(&out)["auto_closed"], 0, "{backend}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fetch_all(customer).await.len(), 3, "{backend}");
    assert_eq!(fetch_all(&desk.agent).await.len(), 1, "{backend}");

    desk.ticket(id)
}

/// `value` with ids and times masked and the test's addresses replaced by
/// their role: what must not differ between two backends.
fn masked(value: &Value, names: &[(&str, &str)]) -> Value {
    const IDS: &[&str] = &["id", "ticket_id", "message_id"];
    const TIMES: &[&str] = &[
        "created_at",
        "last_activity_at",
        "closed_at",
        "date",
        "occurred_at",
        "received_at",
        "until",
        "median_seconds",
        "p90_seconds",
    ];
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if (IDS.contains(&k.as_str()) || TIMES.contains(&k.as_str()))
                        && !v.is_null()
                    {
                        Value::String(format!("<{k}>"))
                    } else {
                        masked(v, names)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| masked(v, names)).collect()),
        Value::String(s) => {
            let mut s = s.clone();
            for (address, role) in names {
                s = s.replace(address, role);
            }
            Value::String(s)
        }
        other => other.clone(),
    }
}

#[tokio::test]
async fn the_same_story_gives_the_same_ticket_on_sqlite_and_postgresql() {
    let mut shown = Vec::new();
    for database in [None, Some(fresh_pg_database().await)] {
        let desk = Desk::build("", "", "", database.as_deref());
        let customer = fresh_user("customer");
        let detail = story(&desk, &customer).await;
        assert_eq!(detail["status"], "closed");
        assert_eq!(detail["close_reason"], "inactivity");
        let directions: Vec<&str> = detail["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["direction"].as_str().unwrap())
            .collect();
        assert_eq!(directions, ["in", "out"], "{detail:#}");
        let support_local = desk.support.split('@').next().unwrap().to_string();
        let names = [
            (customer.as_str(), "<customer>"),
            (desk.agent.as_str(), "<agent>"),
            (desk.support.as_str(), "<support>"),
            (support_local.as_str(), "<support>"),
        ];
        // the read-only commands too, and their logs
        let eml = desk.dir.path().join("again.eml");
        let again = simple_message(
            &customer,
            &desk.support,
            "Re: [#1] Printer on fire",
            "Again",
        );
        std::fs::write(&eml, again).unwrap();
        let mut outputs = vec![masked(&detail, &names)];
        for args in [
            vec!["stats", "--json"],
            vec!["tickets", "list", "--status", "closed", "--json"],
            vec!["explain", eml.to_str().unwrap(), "--json"],
            vec!["tickets", "problems", "--json"],
        ] {
            let out = desk.run(&args);
            success(&out, &args.join(" "));
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(log.trim().is_empty(), "{args:?} logged: {log}");
            let mut value: Value = serde_json::from_slice(&out.stdout).unwrap();
            if args[0] == "explain" {
                // its sentences quote stored times (to the nanosecond in
                // SQLite, the microsecond in PostgreSQL): compare the steps
                for step in value["decisions"].as_array_mut().unwrap() {
                    step["decision"] = Value::Null;
                }
            }
            outputs.push(masked(&value, &names));
        }
        shown.push(outputs);
    }
    for (sqlite, postgres) in shown[0].iter().zip(&shown[1]) {
        assert_eq!(
            sqlite,
            postgres,
            "the backends differ:\nSQLite: {}\nPostgreSQL: {}",
            serde_json::to_string_pretty(sqlite).unwrap(),
            serde_json::to_string_pretty(postgres).unwrap()
        );
    }
    let events: Vec<&str> = shown[0][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"ticket.created"), "{events:?}");
    assert_eq!(events.last(), Some(&"ticket.closed"), "{events:?}");
}

#[tokio::test]
async fn a_crash_between_commit_and_flag_loses_and_duplicates_nothing_on_postgresql() {
    let desk = Desk::with_database(&fresh_pg_database().await);
    let customer = fresh_user("customer");
    for i in 0..3 {
        let mail = simple_message(&customer, &desk.support, &format!("Question {i}"), "Hello");
        deliver_lmtp(&desk.support, &mail).await;
    }
    let out = desk
        .command(&["run", "--once"])
        .env("GUICHET_TEST_CRASH_AFTER_COMMIT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the process was meant to die");
    // the first transaction (a batch: here all three messages) commits
    // before any IMAP flag is set
    let stored = desk.tickets().len();
    assert!(
        (1..=3).contains(&stored),
        "the committed batch is stored: {stored}"
    );
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 3, "each message once");
    assert!(
        flags_of_all(&desk.support)
            .await
            .iter()
            .all(|f| f.iter().any(|x| x == "$GuichetDone")),
        "all flagged after the restart"
    );
    wait_for_messages(&customer, 3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fetch_all(&customer).await.len(),
        3,
        "one acknowledgement per ticket, none twice"
    );
}

/// PostgreSQL's TEXT cannot hold NUL, which mail can carry: such a message
/// must still become a ticket (not a problem, nor a blocked mailbox), the
/// same on both backends.
#[tokio::test]
async fn mail_carrying_nul_characters_becomes_the_same_ticket_on_both_backends() {
    let mut shown = Vec::new();
    for database in [None, Some(fresh_pg_database().await)] {
        let desk = Desk::build("", "", "", database.as_deref());
        let customer = fresh_user("customer");
        let raw = format!(
            "From: {customer}\r\nTo: {}\r\nSubject: =?utf-8?q?caf=C3=A9=00menu?=\r\n\
             Message-ID: <nul-{}@example.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\nhello=00world\r\n",
            desk.support,
            unique_token()
        )
        .into_bytes();
        deliver_lmtp(&desk.support, &raw).await;
        let out = desk.run_once(None);
        assert_eq!(problems_in_log(&out), Vec::<String>::new());
        assert_eq!(
            desk.json(&["tickets", "problems", "--json"]),
            serde_json::json!([])
        );
        let tickets = desk.tickets();
        assert_eq!(tickets.len(), 1, "{tickets:#?}");
        // a NUL in a subject is a control character: one space (one line)
        assert_eq!(tickets[0]["subject"], "caf\u{e9} menu");
        let detail = desk.ticket(tickets[0]["ticket_id"].as_i64().unwrap());
        assert_eq!(detail["messages"][0]["text"], "hello\u{fffd}world");
        // delivered again: already seen, through the same replaced key
        deliver_lmtp(&desk.support, &raw).await;
        let out = desk.run_once(None);
        assert_eq!(report(&out)["mailbox"]["already_seen"], 1);
        shown.push(masked(&detail, &[(&customer, "<customer>")]));
    }
    assert_eq!(shown[0], shown[1]);
}

// ------------------------------------------------------------ several daemons

/// A webhook endpoint on loopback that answers 200 to everything and
/// remembers each request's `webhook-id` and JSON body, in arrival order.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let (read, mut write) = conn.into_split();
                    let mut read = BufReader::new(read);
                    // one request after the other on a kept-alive connection
                    loop {
                        let mut id = String::new();
                        let mut length = 0usize;
                        let mut first = true;
                        loop {
                            let mut line = String::new();
                            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let line = line.trim_end();
                            if line.is_empty() && !first {
                                break;
                            }
                            first = false;
                            if let Some((name, value)) = line.split_once(':') {
                                match name.trim().to_ascii_lowercase().as_str() {
                                    "webhook-id" => id = value.trim().to_string(),
                                    "content-length" => length = value.trim().parse().unwrap_or(0),
                                    _ => {}
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if read.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        log.lock().unwrap().push((id, body));
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if write.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver { url, seen }
    }

    fn seen(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }
}

/// Starts `guichet run --once [--now]` with each settings file at the
/// same instant (one daemon each) and waits for all.
async fn daemons(configs: &[&Path], now: Option<&str>) -> Vec<Output> {
    let children: Vec<_> = configs
        .iter()
        .map(|config| {
            let mut c = Command::new(guichet_bin());
            c.arg("--config").arg(config).args(["run", "--once"]);
            if let Some(n) = now {
                c.args(["--now", n]);
            }
            c.env_remove("GUICHET_CONFIG")
                .env("GUICHET_LOG", "info")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start guichet")
        })
        .collect();
    let waits: Vec<_> = children
        .into_iter()
        .map(|c| tokio::task::spawn_blocking(move || c.wait_with_output()))
        .collect();
    let mut outs = Vec::new();
    for w in waits {
        outs.push(w.await.unwrap().unwrap());
    }
    outs
}

#[tokio::test]
async fn two_daemons_on_one_database_and_one_mailbox_process_each_message_once() {
    several_daemons(2, 50, true, |desk| desk.config.clone()).await
}

/// Three daemons on one database and one mailbox split its messages
/// (issue 17): each message is fetched by one of them only (they claim
/// UIDs before fetching; before, each fetched every message and the
/// losers prepared it again), one ticket and one mail each.
#[tokio::test]
async fn three_daemons_split_one_mailbox_and_fetch_each_message_once() {
    several_daemons(3, 150, true, |desk| desk.config.clone()).await
}

/// The same when the second daemon names the mailbox differently
/// (`inbox` for `INBOX`, as another machine's file might): the daemons no
/// longer share one "last UID" row, so nothing serialises their ingest
/// transactions but the store's own keys and row locks.
#[tokio::test]
async fn two_daemons_naming_the_mailbox_differently_process_each_message_once() {
    several_daemons(2, 50, false, |desk| {
        let text = std::fs::read_to_string(&desk.config).unwrap();
        let text = text.replacen(
            "poll_seconds = 1",
            "poll_seconds = 1\nfolder = \"inbox\"",
            1,
        );
        let other = desk.dir.path().join("other.toml");
        std::fs::write(&other, text).unwrap();
        other
    })
    .await
}

/// `messages` waiting messages, `count` daemons started together (the
/// desk's settings file, and the ones `other_config` writes), then their
/// sweeps together eight days later. `same_name`: they name the mailbox
/// alike, so they share its UID claims and each message is fetched once.
async fn several_daemons(
    count: usize,
    messages: usize,
    same_name: bool,
    other_config: impl Fn(&Desk) -> PathBuf,
) {
    let hooks = Receiver::start().await;
    let database = fresh_pg_database().await;
    let desk = Desk::build(
        r#"auto_close_scope = "any""#,
        "",
        &format!("[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\n", hooks.url),
        Some(&database),
    );
    let customers: Vec<String> = (0..messages).map(|_| fresh_user("customer")).collect();
    for (i, customer) in customers.iter().enumerate() {
        let mail = simple_message(
            customer,
            &desk.support,
            &format!("Question {i}"),
            &format!("Hello, question number {i}."),
        );
        deliver_lmtp(&desk.support, &mail).await;
    }

    let configs: Vec<PathBuf> = std::iter::once(desk.config.clone())
        .chain((1..count).map(|_| other_config(&desk)))
        .collect();
    let configs: Vec<&Path> = configs.iter().map(PathBuf::as_path).collect();
    let started = std::time::Instant::now();
    let outs = daemons(&configs, None).await;
    let took = started.elapsed();
    for out in &outs {
        success(out, "run --once");
        assert_eq!(problems_in_log(out), Vec::<String>::new(), "no errors");
    }
    let reports: Vec<Value> = outs.iter().map(report).collect();
    let sum = |path: &[&str]| -> i64 {
        reports
            .iter()
            .map(|r| path.iter().fold(r, |v, k| &v[*k]).as_i64().unwrap_or(0))
            .sum()
    };
    println!(
        "{count} daemons, {messages} messages: {took:?}; reports {}",
        serde_json::to_string(&reports).unwrap()
    );
    assert_eq!(
        sum(&["mailbox", "new_tickets"]),
        messages as i64,
        "{reports:?}"
    );
    assert_eq!(sum(&["mail", "sent"]), 2 * messages as i64, "{reports:?}");
    if same_name {
        assert_eq!(
            sum(&["mailbox", "fetched"]),
            messages as i64,
            "each message fetched by one daemon only: {reports:?}"
        );
    }
    // Mail is ingested in batches: the daemon that loses the race for a
    // batch finds each of its messages stored by the other (the unique
    // key, under the other's row locks) and must count them as already
    // seen, not store them twice; a daemon that starts late finds them
    // committed and fetches nothing. Either way each message is counted
    // once as new. (The race itself is forced in tests/store.rs:
    // insert_raw_racing_transactions_store_one_row.)
    for r in &reports {
        assert_eq!(
            r["mailbox"]["new_tickets"].as_i64().unwrap()
                + r["mailbox"]["already_seen"].as_i64().unwrap(),
            r["mailbox"]["fetched"].as_i64().unwrap(),
            "every fetched message is new or already seen: {reports:?}"
        );
    }
    // Which daemon sends how much is up to timing (claims grow with the
    // relay's pace): what matters is that the sum above is exact. The
    // claims race itself is forced in tests/store.rs
    // (concurrent_mail_claims_never_hand_out_a_row_twice).

    // one ticket per message, each with its one message
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), messages);
    let mut clients: Vec<&str> = tickets
        .iter()
        .map(|t| t["client"].as_str().unwrap())
        .collect();
    clients.sort_unstable();
    let mut expected: Vec<&str> = customers.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(clients, expected, "one ticket per customer");
    let store = guichet::store::Store::connect(&database).await.unwrap();
    use guichet::store::CountedTable;
    assert_eq!(
        store.count(CountedTable::RawMessages).await.unwrap(),
        messages as i64
    );
    assert_eq!(
        store.count(CountedTable::Messages).await.unwrap(),
        messages as i64
    );
    assert_eq!(store.count(CountedTable::PendingMail).await.unwrap(), 0);
    assert_eq!(store.count(CountedTable::PendingWebhooks).await.unwrap(), 0);
    let flags = flags_of_all(&desk.support).await;
    assert_eq!(flags.len(), messages);
    assert!(
        flags.iter().all(|f| f.iter().any(|x| x == "$GuichetDone")),
        "{flags:?}"
    );

    // every acknowledgement once, every agent copy once (read over IMAP)
    wait_for_messages(&desk.agent, messages, WAIT).await;
    for customer in &customers {
        wait_for_messages(customer, 1, WAIT).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fetch_all(&desk.agent).await.len(), messages, "agent copies");
    for customer in &customers {
        let got = fetch_all(customer).await;
        assert_eq!(got.len(), 1, "{customer}: acknowledgements");
    }

    // the two daemons' sweeps at once, eight days later: each ticket closed once
    let later = (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339();
    let outs = daemons(&configs, Some(&later)).await;
    for out in &outs {
        success(out, "run --once --now");
        assert_eq!(problems_in_log(out), Vec::<String>::new(), "no errors");
    }
    let closed: i64 = outs
        .iter()
        .map(|o| report(o)["auto_closed"].as_i64().unwrap())
        .sum();
    assert_eq!(closed, messages as i64, "each ticket closed by one daemon");
    assert!(desk.tickets().iter().all(|t| t["status"] == "closed"));
    for t in &tickets {
        let detail = desk.ticket(t["ticket_id"].as_i64().unwrap());
        let closings = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "ticket.closed")
            .count();
        assert_eq!(closings, 1, "{detail:#}");
    }
    for customer in &customers {
        wait_for_messages(customer, 2, WAIT).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for customer in &customers {
        assert_eq!(
            fetch_all(customer).await.len(),
            2,
            "{customer}: acknowledgement and one closing notice"
        );
    }

    // every webhook event delivered once, each ticket's in order
    let seen = hooks.seen();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for (id, _) in &seen {
        *per_id.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(seen.len(), 2 * messages, "created + closed per ticket");
    let mut per_ticket: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for (_, body) in &seen {
        per_ticket
            .entry(body["ticket_id"].as_i64().unwrap())
            .or_default()
            .push(body["event"].as_str().unwrap());
    }
    assert_eq!(per_ticket.len(), messages);
    for (ticket, events) in &per_ticket {
        assert_eq!(
            events,
            &["ticket.created", "ticket.closed"],
            "ticket {ticket}"
        );
    }
}

/// Two long-running daemons (`guichet run`, IMAP IDLE, delivery loop) on
/// one database and mailbox while mail arrives: each message once, each
/// acknowledgement once, and both stop cleanly on SIGTERM.
#[tokio::test]
async fn two_running_daemons_share_the_work_while_mail_arrives() {
    const MESSAGES: usize = 30;
    let database = fresh_pg_database().await;
    let desk = Desk::with_database(&database);
    // migrate first, so that both start on an existing schema too
    success(&desk.run(&["migrate"]), "migrate");
    let start = || {
        desk.command(&["run"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start guichet run")
    };
    let daemons = [start(), start()];
    tokio::time::sleep(Duration::from_secs(1)).await;
    let customers: Vec<String> = (0..MESSAGES).map(|_| fresh_user("customer")).collect();
    for (i, customer) in customers.iter().enumerate() {
        let mail = simple_message(customer, &desk.support, &format!("Live {i}"), "Hello");
        deliver_lmtp(&desk.support, &mail).await;
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for customer in &customers {
        wait_for_messages(customer, 1, WAIT).await;
    }
    wait_for_messages(&desk.agent, MESSAGES, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    for d in &daemons {
        let term = Command::new("kill")
            .args(["-TERM", &d.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
    }
    for d in daemons {
        let out = tokio::task::spawn_blocking(move || d.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        success(&out, "guichet run, stopped by SIGTERM");
        assert_eq!(problems_in_log(&out), Vec::<String>::new(), "no errors");
        let log = String::from_utf8_lossy(&out.stderr);
        println!(
            "daemon {}: {} mail sent, passes: {:?}",
            out.status,
            log.matches("mail sent").count(),
            log.lines()
                .filter(|l| l.contains("mailbox pass"))
                .filter_map(|l| l.split("new_tickets: ").nth(1))
                .map(|t| t.split(',').next().unwrap_or(""))
                .collect::<Vec<_>>()
        );
    }

    assert_eq!(desk.tickets().len(), MESSAGES, "one ticket per message");
    for customer in &customers {
        assert_eq!(fetch_all(customer).await.len(), 1, "{customer}: one ack");
    }
    assert_eq!(
        fetch_all(&desk.agent).await.len(),
        MESSAGES,
        "one copy each"
    );
    assert!(
        flags_of_all(&desk.support)
            .await
            .iter()
            .all(|f| f.iter().any(|x| x == "$GuichetDone"))
    );
}

/// A daemon killed while it holds the claim on a question's UID gives
/// its claims back when it starts again, before anything of them is
/// stored. Another daemon, waiting behind that claim with the customer's
/// follow-up (a later UID), must then store the question first, itself,
/// rather than go past it: else the follow-up opens a ticket of its own
/// (seen in the soak with two daemons and `kill -9`).
#[tokio::test]
async fn a_dead_daemons_given_back_message_is_stored_before_the_later_reply() {
    use sqlx::Connection;
    let database = fresh_pg_database().await;
    let desk = Desk::with_database(&database);
    // a first pass on the empty mailbox writes its checkpoint
    success(&desk.run_once(None), "first pass");
    let customer = fresh_user("customer");
    let question_id = format!("<{}@client.test>", unique_token());
    let question = harness::mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", "The printer is on fire"),
            ("Message-ID", &question_id),
        ],
        "Flames everywhere.",
    );
    let follow_up = harness::mail(
        &[
            ("From", &customer),
            ("To", &desk.support),
            ("Subject", "Re: The printer is on fire"),
            ("In-Reply-To", &question_id),
            ("References", &question_id),
        ],
        "It is out now, but it smells.",
    );
    deliver_lmtp(&desk.support, &question).await;
    deliver_lmtp(&desk.support, &follow_up).await;

    // a daemon of this host that no longer runs holds the question (UID 1)
    let mut db = sqlx::PgConnection::connect(&database).await.unwrap();
    let (mailbox, validity): (String, i64) =
        sqlx::query_as("SELECT mailbox, uidvalidity FROM mailbox_state")
            .fetch_one(&mut db)
            .await
            .unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let dead = format!("{}/4194303/5", host.trim());
    sqlx::query(
        "INSERT INTO fetch_claims (mailbox, uidvalidity, uid, claimed_by, claimed_until) \
         VALUES ($1, $2, 1, $3, now() + interval '5 minutes')",
    )
    .bind(&mailbox)
    .bind(validity)
    .bind(&dead)
    .execute(&mut db)
    .await
    .unwrap();

    let daemon = desk
        .command(&["run", "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // it claims the follow-up (UID 2) and waits behind the dead claim
    let started = std::time::Instant::now();
    loop {
        let follow_up_claimed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM fetch_claims WHERE uid = 2 AND claimed_by <> $1)",
        )
        .bind(&dead)
        .fetch_one(&mut db)
        .await
        .unwrap();
        if follow_up_claimed {
            break;
        }
        assert!(started.elapsed() < WAIT, "the daemon never claimed UID 2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // the dead daemon starts again: its claims are given back at once
    sqlx::query("DELETE FROM fetch_claims WHERE claimed_by = $1")
        .bind(&dead)
        .execute(&mut db)
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || daemon.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    success(&out, "the waiting daemon's pass");

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1, "one ticket: {tickets:?}");
    let id = tickets[0]["ticket_id"].as_i64().unwrap();
    let messages = desk.ticket(id)["messages"].as_array().cloned().unwrap();
    assert_eq!(
        messages.len(),
        2,
        "the question, then its follow-up, on one ticket: {messages:?}"
    );
    // and nothing is left to open another one
    success(&desk.run_once(None), "next pass");
    assert_eq!(desk.tickets().len(), 1, "still one ticket");
}

/// A pass that fails midway (here the IMAP server hangs up on a message
/// it cannot read) gives back the UIDs it claimed at once: another daemon
/// need not wait for the claims to run out (5 minutes) to take them.
#[tokio::test]
async fn a_failed_pass_gives_back_its_claims_at_once() {
    use sqlx::Connection;
    use std::os::unix::fs::PermissionsExt;
    let database = fresh_pg_database().await;
    let desk = Desk::with_database(&database);
    let customer = fresh_user("customer");
    for i in 0..3 {
        let mail = simple_message(&customer, &desk.support, &format!("Claimed {i}"), "Hello");
        deliver_lmtp(&desk.support, &mail).await;
    }
    // Dovecot cannot read the second message: it answers the group's
    // FETCH with `* BYE` and hangs up, and the pass fails
    let broken = support::message_file(&desk.support, "Claimed 1");
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = desk.run(&["run", "--once"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mailbox pass failed"),
        "the pass was meant to fail: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut db = sqlx::PgConnection::connect(&database).await.unwrap();
    let held: Vec<(i64, String)> = sqlx::query_as("SELECT uid, claimed_by FROM fetch_claims")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(held, Vec::new(), "no UID left claimed by the failed pass");
    // readable again (Dovecot may have moved it from new/ to cur/): the
    // next pass takes all three
    let broken = support::message_file(&desk.support, "Claimed 1");
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o600)).unwrap();
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 3, "each message once");
}
