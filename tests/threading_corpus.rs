//! Threading and robot safety over the real-world corpus
//! (`../shared/corpus`, see its SOURCES.md), through the whole ingest
//! pipeline in-process against a fresh SQLite store.
//!
//! Threading: every corpus message whose `In-Reply-To` (else the last of
//! its `References`) names a parent must land on the parent's ticket. When
//! the parent is itself in the corpus it is ingested first (parents before
//! children); when it is not — the usual case, the corpus holds single
//! messages cut out of longer threads — a plain customer message carrying
//! that Message-ID is ingested first as the thread's root, as if Guichet
//! had received it. What this measures is Guichet reading real-world
//! `In-Reply-To`/`References` headers (folded, several ids, comments, odd
//! syntax) and placing the message by them. The messages that reply to
//! nothing must never join an existing ticket.
//!
//! Robots: no message that `index.tsv` guesses is a bounce, auto-reply,
//! auto-generated or list mail may get an automatic answer out of the
//! pipeline (the classifier's own figures against each source's
//! expectations are in `tests/robots_corpus.rs`).
//!
//! `cargo test --test threading_corpus -- --nocapture` prints the figures.
//! The GPL/AGPL parts of the corpus are read in place, never copied; when
//! the corpus is absent this test says so and passes, except under CI.

mod corpus;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use guichet::mail::templates::Templates;
use guichet::store::Store;
use guichet::workers::Ctx;
use guichet::workers::ingest::{Options, Outcome, Source, Trace, ingest};

struct Row {
    path: String,
    auto_guess: String,
}

fn rfc822_rows(dir: &Path) -> Vec<Row> {
    let index = std::fs::read_to_string(dir.join("index.tsv")).unwrap();
    let mut lines = index.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path, kind, guess) = (col("path"), col("kind"), col("auto_guess"));
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c.get(kind) == Some(&"rfc822"))
        .map(|c| Row {
            path: c[path].to_string(),
            auto_guess: c[guess].to_string(),
        })
        .collect()
}

/// The first value of a header in the raw header block, unfolded: read
/// here by hand, independently of Guichet's parser, so that the figure
/// checks Guichet's reading of the headers against the plain syntax.
fn raw_header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut value: Option<String> = None;
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(v) = value.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.trim().eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_string());
        }
    }
    value
}

/// The `<msg-id>`s of a header, without the brackets (RFC 5322 3.6.4).
fn msg_ids(raw: &[u8], name: &str) -> Vec<String> {
    let Some(v) = raw_header(raw, name) else {
        return Vec::new();
    };
    v.split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(id, _)| id.trim().to_string()))
        .filter(|id| id.contains('@'))
        .collect()
}

/// The Message-ID a message answers: its `In-Reply-To`, else the newest
/// of its `References`.
fn parent_of(raw: &[u8]) -> Option<String> {
    let own = msg_ids(raw, "Message-ID").into_iter().next();
    msg_ids(raw, "In-Reply-To")
        .into_iter()
        .next()
        .or_else(|| msg_ids(raw, "References").pop())
        .filter(|p| Some(p) != own.as_ref())
}

/// Automatic answers (not copies to agents, not relays) the trace queued.
fn automatic_answers(trace: &Trace) -> Vec<String> {
    trace
        .steps
        .iter()
        .filter_map(|s| s.data.as_ref()?.get("send")?.as_str().map(str::to_string))
        .filter(|k| !matches!(k.as_str(), "agent_copy" | "agent_reply" | "agent_notice"))
        .collect()
}

fn ticket_of(outcome: &Outcome) -> Option<i64> {
    match outcome {
        Outcome::Ticket { ticket_id, .. } => Some(*ticket_id),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_replies_join_their_thread_and_robots_get_no_answer() {
    let Some(corpus) = corpus::dir() else { return };
    let rows = rfc822_rows(&corpus);
    assert!(rows.len() > 1000, "index.tsv lists {} messages", rows.len());

    let mut mails: Vec<(Row, Vec<u8>, Option<String>)> = rows
        .into_iter()
        .map(|r| {
            let raw = corpus::mail_bytes(&corpus.join(&r.path));
            let own = msg_ids(&raw, "Message-ID").into_iter().next();
            (r, raw, own)
        })
        .collect();

    // parents before children: depth along the chain of corpus parents
    let by_id: HashMap<String, usize> = mails
        .iter()
        .enumerate()
        .rev() // the first file with an id wins, as in the store
        .filter_map(|(i, (_, _, own))| own.clone().map(|id| (id, i)))
        .collect();
    let depth = |start: usize| -> usize {
        let mut d = 0;
        let mut at = start;
        while let Some(p) = parent_of(&mails[at].1).and_then(|p| by_id.get(&p).copied()) {
            d += 1;
            at = p;
            if d > mails.len() {
                break; // a cycle
            }
        }
        d
    };
    let depths: Vec<usize> = (0..mails.len()).map(depth).collect();
    let mut order: Vec<usize> = (0..mails.len()).collect();
    order.sort_by_key(|&i| depths[i]);

    let tmp = tempfile::tempdir().unwrap();
    let s = corpus::offline_settings(tmp.path(), "max_auto_replies_per_hour = 1000");
    let store = Store::connect(&s.database.url).await.unwrap();
    store.migrate().await.unwrap();
    let templates = Templates::load(None).unwrap();
    let now: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
    let ctx = Ctx {
        settings: &s,
        store: &store,
        templates: &templates,
        now,
    };
    let run = |raw: Vec<u8>| {
        let ctx = &ctx;
        async move {
            ingest(ctx, &raw, &Source::default(), Options::default())
                .await
                .unwrap_or_else(|e| panic!("ingest failed: {e:#}"))
        }
    };

    // the ticket each Message-ID landed on (corpus messages and roots)
    // (ticket, whether the Message-ID is a corpus message's rather than a root's)
    let mut ticket_of_id: HashMap<String, (Option<i64>, bool)> = HashMap::new();
    let (mut replies, mut joined, mut to_corpus, mut to_root) = (0, 0, 0, 0);
    let (mut orphans, mut orphans_ok) = (0, 0);
    let (mut robots, mut robots_silent, mut humans, mut humans_answered) = (0, 0, 0, 0);
    let mut misses = Vec::new();
    let mut false_joins = Vec::new();
    let mut answered_robots = Vec::new();
    let mut not_placed: BTreeMap<String, usize> = BTreeMap::new();
    let mut unanswered: BTreeMap<String, usize> = BTreeMap::new();
    let mut roots = 0;

    for &i in &order {
        let (row, raw, own) = &mut mails[i];
        let parent = parent_of(raw);
        // the expected ticket: the parent's (a corpus message ingested
        // before, or a root built now)
        let expected = match &parent {
            Some(p) if ticket_of_id.contains_key(p) => {
                let (t, in_corpus) = ticket_of_id[p];
                t.map(|t| (t, in_corpus))
            }
            Some(p) if by_id.contains_key(p) => None, // a corpus parent in a cycle
            Some(p) => {
                roots += 1;
                let root = format!(
                    "From: root{roots}@threads.example\r\nTo: support@example.test\r\n\
                     Subject: A question\r\nMessage-ID: <{p}>\r\n\
                     Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nThe start of a thread.\r\n"
                );
                let (outcome, trace) = run(root.into_bytes()).await;
                let t = ticket_of(&outcome).unwrap_or_else(|| {
                    panic!(
                        "the root <{p}> of {} opens no ticket: {outcome:?} {trace:#?}",
                        row.path
                    )
                });
                ticket_of_id.insert(p.clone(), (Some(t), false));
                Some((t, false))
            }
            None => None,
        };
        let (outcome, trace) = run(std::mem::take(raw)).await;
        if outcome == Outcome::AlreadySeen {
            continue; // another file of the corpus holds the same message
        }
        if let Some(id) = own {
            ticket_of_id
                .entry(id.clone())
                .or_insert((ticket_of(&outcome), true));
        }
        match (&parent, expected) {
            (Some(p), Some((want, parent_in_corpus))) => {
                replies += 1;
                if ticket_of(&outcome) == Some(want) {
                    joined += 1;
                    if parent_in_corpus {
                        to_corpus += 1;
                    } else {
                        to_root += 1;
                    }
                } else {
                    misses.push(format!(
                        "{}: names <{p}> (ticket {want}), got {outcome:?}",
                        row.path
                    ));
                }
            }
            (Some(_), None) => {
                *not_placed
                    .entry("reply to a message outside tickets".into())
                    .or_default() += 1;
            }
            (None, _) => {
                orphans += 1;
                match &outcome {
                    Outcome::Ticket { created: true, .. } | Outcome::Unplaced { .. } => {
                        orphans_ok += 1
                    }
                    other => false_joins.push(format!("{}: {other:?}", row.path)),
                }
            }
        }

        let answers = automatic_answers(&trace);
        if row.auto_guess == "none" {
            // a new ticket from a person is acknowledged, unless our
            // classifier sees a robot the index's heuristic missed
            if matches!(outcome, Outcome::Ticket { created: true, .. }) {
                humans += 1;
                if !answers.is_empty() {
                    humans_answered += 1;
                } else {
                    let robot = &trace.steps[0];
                    let kind = robot.data.as_ref().map(|d| d["kind"].to_string());
                    *unanswered
                        .entry(kind.unwrap_or_default().trim_matches('"').to_string())
                        .or_default() += 1;
                    if std::env::var_os("THREADING_VERBOSE").is_some() {
                        println!("  unanswered: {} ({})", row.path, robot.decision);
                    }
                }
            }
        } else {
            robots += 1;
            // a person forwarding a bounce is a customer: see robots_corpus
            if answers.is_empty() || row.path.ends_with("lhost-sendmail-14.eml") {
                robots_silent += 1;
            } else {
                answered_robots.push(format!("{} [{}]: {answers:?}", row.path, row.auto_guess));
            }
        }
    }

    for m in &misses {
        println!("  miss: {m}");
    }
    for f in &false_joins {
        println!("  false join: {f}");
    }
    for a in &answered_robots {
        println!("  robot answered: {a}");
    }
    println!(
        "threading: {joined}/{replies} replies joined their thread ({to_corpus} to a parent in the corpus, \
         {to_root} to a thread root built from their In-Reply-To/References; {roots} roots); {not_placed:?}"
    );
    println!(
        "threading: {orphans_ok}/{orphans} messages that reply to nothing opened a ticket of their own \
         or were kept outside tickets; {} false joins",
        false_joins.len()
    );
    println!(
        "robots (whole pipeline): {robots_silent}/{robots} messages index.tsv calls robots got no automatic answer; \
         {humans_answered}/{humans} new tickets from senders it calls human were acknowledged \
         (not: {unanswered:?}, robots its heuristic missed; THREADING_VERBOSE=1 lists them)"
    );
    assert!(replies >= 80, "only {replies} replies in the corpus");
    assert!(to_corpus >= 2, "the corpus' own reply chains");
    assert_eq!(
        joined, replies,
        "replies that missed their thread: {misses:#?}"
    );
    assert!(false_joins.is_empty(), "{false_joins:#?}");
    assert_eq!(robots_silent, robots, "{answered_robots:#?}");
    assert!(
        humans_answered * 100 >= humans * 90,
        "{humans_answered}/{humans}"
    );
}
