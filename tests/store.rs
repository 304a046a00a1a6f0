//! The store's promises, checked on both backends (a fresh SQLite file and
//! a fresh PostgreSQL database of the rig): raw mail is stored once per
//! key even when two transactions race, outbox leases hold until they
//! expire and are never handed out twice, webhook deliveries of a ticket
//! go out one at a time in order, the mailbox's last UID never goes
//! backwards, and a ticket read in a write transaction is never stale
//! when written back.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use guichet::store::{NewEvent, NewMail, NewRaw, NewTicket, Store, WebhookOutcome};
use support::{fresh_pg_database, fresh_sqlite_url};

/// A fresh store on each backend; the temp dir keeps the SQLite file alive.
async fn backends() -> (tempfile::TempDir, Vec<Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut stores = Vec::new();
    for url in [fresh_sqlite_url(dir.path()), fresh_pg_database().await] {
        let store = Store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e:#}"));
        store.migrate().await.expect("migrate");
        stores.push(store);
    }
    (dir, stores)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap()
}

fn raw(key: &str) -> NewRaw<'_> {
    NewRaw {
        dedup_key: key,
        raw: b"From: a@example.test\r\n\r\nhello\r\n",
        received_at: t0(),
        mailbox: Some("support@host/INBOX"),
        imap_uid: Some(1),
        uid_validity: Some(1),
        problem: None,
    }
}

async fn new_ticket(store: &Store, subject: &str) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let id = tx
        .create_ticket(&NewTicket {
            subject,
            department: "Support",
            client: "ann@example.test",
            language: "en",
            now: t0(),
            linked_from: None,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn enqueue_mails(store: &Store, n: usize, at: DateTime<Utc>) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..n {
        let message_id = format!("<m{i}-{}@guichet.test>", support::unique_token());
        tx.enqueue_mail(&NewMail {
            ticket_id: None,
            kind: "ack",
            envelope_from: "support@example.test",
            recipients: "ann@example.test",
            message_id: &message_id,
            raw: b"Subject: x\r\n\r\nbody\r\n",
            now: at,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn queue_event(store: &Store, ticket: i64, endpoints: &[&str], at: DateTime<Utc>) -> String {
    let event_id = format!("evt_{}", support::unique_token());
    let mut tx = store.begin().await.unwrap();
    tx.record_event(
        &NewEvent {
            event_id: &event_id,
            ticket_id: ticket,
            event: "ticket.replied",
            occurred_at: at,
            data: "{}",
            payload: "{}",
        },
        endpoints,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    event_id
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> i64) -> Vec<i64> {
    rows.iter().map(id).collect()
}

#[tokio::test]
async fn insert_raw_stores_a_key_once() {
    let (_dir, stores) = backends().await;
    for store in &stores {
        let b = store.backend();
        let mut tx = store.begin().await.unwrap();
        let first = tx.insert_raw(&raw("<one@x>")).await.unwrap();
        assert!(first.is_some(), "{b}: first insert stores");
        let again = tx.insert_raw(&raw("<one@x>")).await.unwrap();
        assert_eq!(again, None, "{b}: same key in the same transaction");
        assert!(tx.is_known("<one@x>").await.unwrap(), "{b}");
        assert!(!tx.is_known("<two@x>").await.unwrap(), "{b}");
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.insert_raw(&raw("<one@x>")).await.unwrap(),
            None,
            "{b}: same key after the commit"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            store
                .count(guichet::store::CountedTable::RawMessages)
                .await
                .unwrap(),
            1,
            "{b}"
        );
    }
}

/// Two transactions insert the same key at once: the second waits for the
/// first, and stores the message only if the first rolled back.
#[tokio::test]
async fn insert_raw_racing_transactions_store_one_row() {
    let (_dir, stores) = backends().await;
    for store in &stores {
        let b = store.backend();
        for first_commits in [true, false] {
            let key = format!("<race-{first_commits}@x>");
            let mut first = store.begin().await.unwrap();
            assert!(first.insert_raw(&raw(&key)).await.unwrap().is_some());
            let second = {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let mut tx = store.begin().await.unwrap();
                    let got = tx.insert_raw(&raw(&key)).await.unwrap();
                    tx.commit().await.unwrap();
                    got
                })
            };
            tokio::time::sleep(StdDuration::from_millis(300)).await;
            assert!(
                !second.is_finished(),
                "{b}: the second insert waits for the first transaction"
            );
            if first_commits {
                first.commit().await.unwrap();
            } else {
                drop(first); // rolled back
            }
            let got = tokio::time::timeout(StdDuration::from_secs(40), second)
                .await
                .expect("the second insert finishes")
                .unwrap();
            assert_eq!(
                got.is_some(),
                !first_commits,
                "{b}: first commits = {first_commits}"
            );
        }
        assert_eq!(
            store
                .count(guichet::store::CountedTable::RawMessages)
                .await
                .unwrap(),
            2,
            "{b}: one row per key"
        );
    }
}

#[tokio::test]
async fn claimed_mail_is_not_claimed_again_until_its_lease_expires() {
    let (_dir, stores) = backends().await;
    let lease = Duration::minutes(5);
    for store in &stores {
        let b = store.backend();
        enqueue_mails(store, 3, t0()).await;
        assert!(
            store
                .claim_due_mail(t0() - Duration::seconds(1), lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "{b}: not due before next_attempt_at"
        );
        let first = store.claim_due_mail(t0(), lease, 2).await.unwrap();
        assert_eq!(ids(&first, |r| r.id), [1, 2], "{b}: limit, in id order");
        assert!(first.iter().all(|r| r.attempts == 1), "{b}");
        let second = store.claim_due_mail(t0(), lease, 10).await.unwrap();
        assert_eq!(ids(&second, |r| r.id), [3], "{b}: leased rows are skipped");
        let during = t0() + Duration::minutes(4);
        assert!(
            store
                .claim_due_mail(during, lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "{b}: all leased"
        );

        store.mail_sent(1, during).await.unwrap();
        store
            .mail_failed(2, "550 no such user", None, during)
            .await
            .unwrap();
        let retry_at = t0() + Duration::minutes(20);
        store
            .mail_failed(3, "421 try later", Some(retry_at), during)
            .await
            .unwrap();
        let after_lease = t0() + Duration::minutes(6);
        assert!(
            store
                .claim_due_mail(after_lease, lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "{b}: sent, failed for good, or not due yet"
        );
        let retried = store.claim_due_mail(retry_at, lease, 10).await.unwrap();
        assert_eq!(ids(&retried, |r| r.id), [3], "{b}: retried when due");
        assert_eq!(retried[0].attempts, 2, "{b}");

        // a lease that expires without an outcome (the daemon died): taken again
        let later = retry_at + Duration::minutes(6);
        let again = store.claim_due_mail(later, lease, 10).await.unwrap();
        assert_eq!(ids(&again, |r| r.id), [3], "{b}: expired lease");
        assert_eq!(again[0].attempts, 3, "{b}");

        // given back untried (the server is down): due later, not an attempt
        let back_at = later + Duration::minutes(2);
        store.postpone_mail(3, back_at).await.unwrap();
        assert!(
            store
                .claim_due_mail(back_at - Duration::seconds(1), lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "{b}: postponed"
        );
        let back = store.claim_due_mail(back_at, lease, 10).await.unwrap();
        assert_eq!(ids(&back, |r| r.id), [3], "{b}: due again");
        assert_eq!(
            back[0].attempts, 3,
            "{b}: the postponed claim did not count"
        );
    }
}

/// Many claimers at once (several daemons): every row is handed out once.
#[tokio::test]
async fn concurrent_mail_claims_never_hand_out_a_row_twice() {
    let (_dir, stores) = backends().await;
    for store in &stores {
        let b = store.backend();
        enqueue_mails(store, 120, t0()).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .claim_due_mail(t0(), Duration::minutes(5), 7)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.iter().map(|r| r.id));
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let distinct: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), 120, "{b}: claimed {} rows", all.len());
        assert_eq!(distinct.len(), 120, "{b}: a row was claimed twice");
    }
}

#[tokio::test]
async fn webhook_deliveries_of_a_ticket_go_one_at_a_time_in_order() {
    let (_dir, stores) = backends().await;
    let lease = Duration::minutes(2);
    let (x, y) = ("https://x.example.test/hook", "https://y.example.test/hook");
    for store in &stores {
        let b = store.backend();
        let a_ticket = new_ticket(store, "A").await;
        let b_ticket = new_ticket(store, "B").await;
        let a1 = queue_event(store, a_ticket, &[x, y], t0()).await;
        let a2 = queue_event(store, a_ticket, &[x], t0()).await;
        let b1 = queue_event(store, b_ticket, &[x], t0()).await;
        let events = |rows: &[guichet::store::WebhookRow]| -> Vec<(String, String)> {
            rows.iter()
                .map(|r| (r.event_id.clone(), r.endpoint.clone()))
                .collect()
        };

        let first = store.claim_due_webhooks(x, t0(), lease, 10).await.unwrap();
        assert_eq!(
            events(&first),
            [(a1.clone(), x.to_string()), (b1.clone(), x.to_string())],
            "{b}: the oldest of each ticket, of this endpoint only"
        );
        let at_y = store.claim_due_webhooks(y, t0(), lease, 10).await.unwrap();
        assert_eq!(events(&at_y), [(a1.clone(), y.to_string())], "{b}");
        assert!(
            store
                .claim_due_webhooks(x, t0(), lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "{b}: a2 waits while a1 is leased to x"
        );
        let a1_x = first[0].id;
        let now = t0() + Duration::seconds(10);
        // a1 failed at x and will be retried later: a2 still waits behind it
        store
            .webhook_result(
                a1_x,
                WebhookOutcome::Retry {
                    status: Some(503),
                    error: "HTTP 503",
                    at: now + Duration::minutes(1),
                },
                now,
            )
            .await
            .unwrap();
        assert!(
            store
                .claim_due_webhooks(x, now, lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "{b}: a2 never overtakes a1"
        );
        let retry = now + Duration::minutes(1);
        let again = store.claim_due_webhooks(x, retry, lease, 10).await.unwrap();
        assert_eq!(events(&again), [(a1.clone(), x.to_string())], "{b}");
        assert_eq!(again[0].attempts, 2, "{b}");
        store
            .webhook_result(a1_x, WebhookOutcome::Delivered { status: 200 }, retry)
            .await
            .unwrap();
        let next = store.claim_due_webhooks(x, retry, lease, 10).await.unwrap();
        assert_eq!(events(&next), [(a2.clone(), x.to_string())], "{b}");
        // a dead delivery does not block the ones after it forever
        store
            .webhook_result(
                next[0].id,
                WebhookOutcome::Dead {
                    status: Some(410),
                    error: "HTTP 410",
                },
                retry,
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .count(guichet::store::CountedTable::PendingWebhooks)
                .await
                .unwrap(),
            2,
            "{b}: a1 at y and b1 are still leased, pending"
        );
    }
}

/// Each endpoint is claimed on its own (issue 26): a hung endpoint's
/// leases hold none of another endpoint's events; abandoned attempts are
/// given back due as they were; an endpoint's health is kept; events of an
/// endpoint gone from the settings can be given up at once.
#[tokio::test]
async fn webhook_lanes_claim_release_and_keep_their_endpoints_health() {
    let (_dir, stores) = backends().await;
    let lease = Duration::minutes(2);
    let (hung, chat) = (
        "https://crm.example.test/hook",
        "https://chat.example.test/hook",
    );
    for store in &stores {
        let b = store.backend();
        let mut tickets = Vec::new();
        for i in 0..3 {
            let t = new_ticket(store, &format!("T{i}")).await;
            queue_event(store, t, &[hung, chat], t0()).await;
            tickets.push(t);
        }
        // the hung endpoint's lane claims all of its events…
        let held = store
            .claim_due_webhooks(hung, t0(), lease, 10)
            .await
            .unwrap();
        assert_eq!(held.len(), 3, "{b}");
        assert!(held.iter().all(|r| r.endpoint == hung), "{b}");
        assert_eq!(
            store.count_due_webhooks(hung, t0()).await.unwrap(),
            0,
            "{b}"
        );
        // …and the other endpoint's are all still there
        assert_eq!(
            store.count_due_webhooks(chat, t0()).await.unwrap(),
            3,
            "{b}"
        );
        let other = store
            .claim_due_webhooks(chat, t0(), lease, 10)
            .await
            .unwrap();
        assert_eq!(other.len(), 3, "{b}");
        assert!(other.iter().all(|r| r.endpoint == chat), "{b}");

        // shutdown: the attempts in flight are abandoned, given back as
        // they were (due, lease gone, the claim not counted)
        let ids: Vec<i64> = held.iter().map(|r| r.id).collect();
        store.release_webhooks(&ids).await.unwrap();
        let again = store
            .claim_due_webhooks(hung, t0(), lease, 10)
            .await
            .unwrap();
        assert_eq!(
            again.iter().map(|r| (r.id, r.attempts)).collect::<Vec<_>>(),
            ids.iter().map(|id| (*id, 1)).collect::<Vec<_>>(),
            "{b}: released, due, claimed once more as the first attempt"
        );

        // health: none until a failure, then kept (the last error stays
        // visible after a success)
        assert!(store.endpoint_health(hung).await.unwrap().is_none(), "{b}");
        let until = t0() + Duration::seconds(30);
        store
            .save_endpoint_health(hung, 5, Some(until), Some("timed out"), t0())
            .await
            .unwrap();
        let h = store.endpoint_health(hung).await.unwrap().unwrap();
        assert_eq!(
            (h.failures, h.paused_until, h.last_error.as_deref()),
            (5, Some(until), Some("timed out")),
            "{b}"
        );
        store
            .save_endpoint_health(hung, 0, None, None, t0() + Duration::minutes(1))
            .await
            .unwrap();
        let h = store.endpoint_health(hung).await.unwrap().unwrap();
        assert_eq!(
            (h.failures, h.paused_until, h.last_error.as_deref()),
            (0, None, Some("timed out")),
            "{b}"
        );
        assert_eq!(store.endpoint_healths().await.unwrap().len(), 1, "{b}");

        // backlogs per endpoint, and an endpoint given up
        let backlogs = store.webhook_backlogs().await.unwrap();
        assert_eq!(
            backlogs
                .iter()
                .map(|r| (r.endpoint.as_str(), r.pending))
                .collect::<Vec<_>>(),
            [(chat, 3), (hung, 3)],
            "{b}"
        );
        assert_eq!(
            store.pending_webhook_endpoints().await.unwrap(),
            [chat.to_string(), hung.to_string()],
            "{b}"
        );
        let dropped = store
            .dead_letter_endpoint(hung, "endpoint no longer in the settings", t0())
            .await
            .unwrap();
        assert_eq!(dropped, 3, "{b}");
        assert_eq!(
            store.pending_webhook_endpoints().await.unwrap(),
            [chat.to_string()],
            "{b}"
        );
    }
}

/// Many claimers at once: no delivery is handed out twice, and never two
/// deliveries of the same (endpoint, ticket) at the same time.
#[tokio::test]
async fn concurrent_webhook_claims_keep_each_ticket_in_order() {
    let (_dir, stores) = backends().await;
    let endpoint = "https://x.example.test/hook";
    for store in &stores {
        let b = store.backend();
        let mut expected = HashMap::new();
        for t in 0..12 {
            let ticket = new_ticket(store, &format!("T{t}")).await;
            let mut order = Vec::new();
            for _ in 0..5 {
                order.push(queue_event(store, ticket, &[endpoint], t0()).await);
            }
            expected.insert(ticket, order);
        }
        // each claimer delivers what it got, then claims again, as deliver.rs does
        let log = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<(i64, String)>::new()));
        let in_flight = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::<i64>::new()));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let store = store.clone();
            let log = log.clone();
            let in_flight = in_flight.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let batch = store
                        .claim_due_webhooks(endpoint, t0(), Duration::minutes(2), 4)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return;
                    }
                    for row in &batch {
                        assert!(
                            in_flight.lock().unwrap().insert(row.ticket_id),
                            "two deliveries of ticket {} in flight at once ({})",
                            row.ticket_id,
                            row.event_id
                        );
                    }
                    for row in batch {
                        log.lock().await.push((row.ticket_id, row.event_id.clone()));
                        in_flight.lock().unwrap().remove(&row.ticket_id);
                        store
                            .webhook_result(row.id, WebhookOutcome::Delivered { status: 200 }, t0())
                            .await
                            .unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("{b}: {e}"));
        }
        let log = log.lock().await;
        assert_eq!(log.len(), 60, "{b}: every delivery once: {log:?}");
        for (ticket, order) in &expected {
            let got: Vec<&String> = log
                .iter()
                .filter(|(t, _)| t == ticket)
                .map(|(_, e)| e)
                .collect();
            assert_eq!(
                got,
                order.iter().collect::<Vec<_>>(),
                "{b}: ticket {ticket} in order"
            );
        }
    }
}

#[tokio::test]
async fn the_mailbox_state_never_goes_backwards() {
    let (_dir, stores) = backends().await;
    let mb = "support@host/INBOX";
    for store in &stores {
        let b = store.backend();
        // (uidvalidity, uid written) → state after
        let steps = [
            ((7, 10), (7, 10)),
            ((7, 5), (7, 10)),
            ((7, 10), (7, 10)),
            ((7, 12), (7, 12)),
            ((8, 3), (8, 3)), // a new UIDVALIDITY starts over
            ((8, 2), (8, 3)),
        ];
        for ((validity, uid), want) in steps {
            let mut tx = store.begin().await.unwrap();
            tx.set_mailbox_state(mb, validity, uid).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(
                store.mailbox_state(mb).await.unwrap(),
                Some(want),
                "{b}: after writing ({validity}, {uid})"
            );
        }
        assert_eq!(store.mailbox_state("other").await.unwrap(), None, "{b}");
    }
}

/// Concurrent writers of the same mailbox's state: the highest UID wins,
/// whatever the commit order.
#[tokio::test]
async fn concurrent_mailbox_state_writers_keep_the_highest_uid() {
    let (_dir, stores) = backends().await;
    let mb = "support@host/INBOX";
    for store in &stores {
        let mut tasks = Vec::new();
        for uid in [5i64, 40, 3, 17, 39, 1, 22, 8] {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                tx.set_mailbox_state(mb, 9, uid).await.unwrap();
                tokio::time::sleep(StdDuration::from_millis(20)).await;
                tx.commit().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            store.mailbox_state(mb).await.unwrap(),
            Some((9, 40)),
            "{}",
            store.backend()
        );
    }
}

/// A ticket read inside a write transaction (to decide and save it) is not
/// read again by another writer before the first commits: no lost update.
#[tokio::test]
async fn a_ticket_read_to_be_written_is_not_stale() {
    let (_dir, stores) = backends().await;
    for store in &stores {
        let b = store.backend();
        let id = new_ticket(store, "Printer").await;
        let mut first = store.begin().await.unwrap();
        let mut ticket = first.ticket(id).await.unwrap().unwrap();
        let second = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let mut t = tx.ticket(id).await.unwrap().unwrap();
                let seen = t.status.clone();
                t.priority = "urgent".into();
                tx.save_ticket(&t).await.unwrap();
                tx.commit().await.unwrap();
                seen
            })
        };
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        ticket.status = "closed".into();
        ticket.closed_at = Some(t0());
        first.save_ticket(&ticket).await.unwrap();
        first.commit().await.unwrap();
        let seen = tokio::time::timeout(StdDuration::from_secs(40), second)
            .await
            .expect("the second writer finishes")
            .unwrap();
        assert_eq!(
            seen, "closed",
            "{b}: the second writer saw the first's change"
        );
        let after = store.ticket(id).await.unwrap().unwrap();
        assert_eq!(
            (after.status.as_str(), after.priority.as_str()),
            ("closed", "urgent"),
            "{b}: both changes kept"
        );
    }
}

/// What a worker may try again: a transaction refused because of a
/// concurrent one (a real deadlock on PostgreSQL, a unique key on both),
/// and not a plain mistake (a missing ticket).
#[tokio::test]
async fn concurrency_failures_are_retryable_and_mistakes_are_not() {
    let (_dir, stores) = backends().await;
    for store in &stores {
        let b = store.backend();
        let ticket = new_ticket(store, "A").await;
        let event_id = queue_event(store, ticket, &[], t0()).await;
        let mut tx = store.begin().await.unwrap();
        let duplicate = NewEvent {
            event_id: &event_id,
            ticket_id: ticket,
            event: "ticket.replied",
            occurred_at: t0(),
            data: "{}",
            payload: "{}",
        };
        let err = tx.record_event(&duplicate, &[]).await.unwrap_err();
        assert!(guichet::store::is_retryable(&err), "{b}: {err:#}");
        drop(tx);

        let mut tx = store.begin().await.unwrap();
        let orphan = NewEvent {
            event_id: "evt_orphan",
            ticket_id: 999_999,
            ..duplicate
        };
        let err = tx.record_event(&orphan, &[]).await.unwrap_err();
        assert!(!guichet::store::is_retryable(&err), "{b}: {err:#}");
    }

    // a deadlock: two transactions lock two tickets in opposite orders
    let store = &stores[1];
    let (a, b) = (new_ticket(store, "A").await, new_ticket(store, "B").await);
    let mut first = store.begin().await.unwrap();
    let mut second = store.begin().await.unwrap();
    first.ticket(a).await.unwrap();
    second.ticket(b).await.unwrap();
    let (one, two) = tokio::join!(first.ticket(b), second.ticket(a));
    let err = match (one, two) {
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => e,
        other => panic!("expected one deadlock victim: {other:?}"),
    };
    assert!(guichet::store::is_retryable(&err), "{err:#}");
}

/// `cleanup`'s question, which decodes a computed boolean: which stored
/// files does a ticket not closed long ago still need?
#[tokio::test]
async fn stored_files_know_which_are_still_needed() {
    let (_dir, stores) = backends().await;
    for store in &stores {
        let b = store.backend();
        let old = new_ticket(store, "old").await;
        let open = new_ticket(store, "open").await;
        let mut tx = store.begin().await.unwrap();
        let mut closed = tx.ticket(old).await.unwrap().unwrap();
        closed.status = "closed".into();
        closed.closed_at = Some(t0() - Duration::days(400));
        tx.save_ticket(&closed).await.unwrap();
        for (ticket, sha) in [(old, "aa"), (old, "bb"), (open, "bb")] {
            let message = tx
                .add_message(&guichet::store::NewMessage {
                    ticket_id: ticket,
                    raw_id: None,
                    direction: "in",
                    kind: "customer",
                    from_addr: "ann@example.test",
                    date: t0(),
                    message_id: None,
                    rule: "new",
                    text: "file",
                    note: None,
                    signed: None,
                })
                .await
                .unwrap();
            tx.add_attachment(&guichet::store::NewAttachment {
                message_id: message,
                ticket_id: ticket,
                filename: "x.png",
                extension: Some("png"),
                size: 3,
                declared_type: "image/png",
                sniffed_type: Some("image/png"),
                sha256: Some(sha),
                verdict: "accepted",
                reason_code: None,
                reason: None,
                created_at: t0(),
            })
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let files = store
            .stored_files(t0() - Duration::days(365))
            .await
            .unwrap();
        assert_eq!(
            files,
            [("aa".to_string(), false), ("bb".to_string(), true)],
            "{b}"
        );
    }
}

#[tokio::test]
async fn a_starting_daemon_takes_back_at_once_the_claims_of_dead_daemons_of_its_host() {
    // PostgreSQL, shared by daemons: only claims whose holder is a
    // daemon of this host that no longer runs come back before the lease
    let url = fresh_pg_database().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let now = t0();
    enqueue_mails(&store, 3, now).await;
    let claimed = store
        .claim_due_mail(now, chrono::Duration::minutes(15), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let holders = [
        format!("{}/4194303/5", host.trim()), // this host, not running
        "elsewhere.test/1/1".to_string(),     // another host's: its lease holds
    ];
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for (row, holder) in claimed.iter().zip(&holders) {
        sqlx::query("UPDATE outbox_mail SET claimed_by = $1 WHERE id = $2")
            .bind(holder)
            .bind(row.id)
            .execute(&pool)
            .await
            .unwrap();
    }
    // the third stays claimed by this (running) test process
    assert_eq!(store.release_dead_claims().await.unwrap(), 1);
    let again = store
        .claim_due_mail(now, chrono::Duration::minutes(15), 10)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|r| r.id).collect::<Vec<_>>(),
        [claimed[0].id],
        "only the dead daemon's claim is due again"
    );
}

#[tokio::test]
async fn merged_customers_are_one_person_transitively_and_split_apart() {
    use guichet::store::Merged;
    let (_dir, stores) = backends().await;
    for store in stores {
        let mut tx = store.begin().await.unwrap();
        // ann has two addresses, bob one; then bob is ann
        assert!(matches!(
            tx.merge_customers("ann@w.test", "Ann@Home.test", "alice@desk.test", t0())
                .await
                .unwrap(),
            Merged::Linked { moved: 1, .. }
        ));
        assert!(matches!(
            tx.merge_customers("bob@w.test", "bob@home.test", "alice@desk.test", t0())
                .await
                .unwrap(),
            Merged::Linked { moved: 1, .. }
        ));
        assert_eq!(
            tx.merge_customers("ann@home.test", "bob@home.test", "x", t0())
                .await
                .unwrap(),
            Merged::Linked {
                key: "ann@w.test".into(),
                moved: 2
            }
        );
        assert!(matches!(
            tx.merge_customers("bob@w.test", "ann@w.test", "x", t0())
                .await
                .unwrap(),
            Merged::AlreadyOne { .. }
        ));
        assert!(
            tx.same_customer("bob@home.test", "ANN@home.test")
                .await
                .unwrap()
        );
        assert!(
            !tx.same_customer("bob@home.test", "carol@w.test")
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        assert_eq!(
            store.addresses_of_customer("bob@w.test").await.unwrap(),
            ["ann@w.test", "ann@home.test", "bob@home.test", "bob@w.test"]
        );
        // the key leaves: the first of the others stands for the rest
        let mut tx = store.begin().await.unwrap();
        assert!(tx.split_customer("ann@w.test").await.unwrap());
        assert!(!tx.split_customer("nobody@w.test").await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(
            store.addresses_of_customer("bob@w.test").await.unwrap(),
            ["ann@home.test", "bob@home.test", "bob@w.test"]
        );
        assert_eq!(
            store.addresses_of_customer("ann@w.test").await.unwrap(),
            ["ann@w.test"]
        );
    }
}

#[tokio::test]
async fn a_raw_mail_over_the_limit_is_not_read() {
    let (_dir, stores) = backends().await;
    for store in &stores {
        let b = store.backend();
        let small = raw("<small@x>");
        let big_bytes = vec![b'x'; 20 << 20];
        let big = NewRaw {
            dedup_key: "<big@x>",
            raw: &big_bytes,
            ..raw("<big@x>")
        };
        let mut tx = store.begin().await.unwrap();
        let small_id = tx.insert_raw(&small).await.unwrap().unwrap();
        let big_id = tx.insert_raw(&big).await.unwrap().unwrap();
        let n = small.raw.len();
        assert_eq!(
            tx.raw_bytes_up_to(small_id, n).await.unwrap().as_deref(),
            Some(small.raw),
            "{b}: at the limit"
        );
        assert_eq!(
            tx.raw_bytes_up_to(small_id, n - 1).await.unwrap(),
            None,
            "{b}"
        );
        assert_eq!(
            tx.raw_bytes_up_to(big_id, 5 << 20).await.unwrap(),
            None,
            "{b}: over"
        );
        assert_eq!(
            tx.raw_bytes_up_to(big_id, 20 << 20)
                .await
                .unwrap()
                .map(|r| r.len()),
            Some(20 << 20),
            "{b}: a big one is read under a big enough limit"
        );
        tx.commit().await.unwrap();
    }
}

/// Queued mail comes back whole with its claim (on SQLite its bytes live
/// beside the row, so that claiming and marking sent rewrite a small row;
/// issue 17), a big one is read when it is sent, a row an older Guichet
/// queued with its bytes inside still goes out, and the Message-IDs of
/// queued mail and stored messages are known for threading (by triggers).
#[tokio::test]
async fn queued_mail_comes_back_whole_and_its_message_id_threads() {
    let (_dir, stores) = backends().await;
    for store in &stores {
        let name = match store {
            Store::Sqlite(_) => "sqlite",
            _ => "postgres",
        };
        let ticket = new_ticket(store, "bytes").await;
        let small = b"Subject: small\r\n\r\nhello\r\n".to_vec();
        let big: Vec<u8> = (0..300 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        let token = support::unique_token();
        let (small_id, big_id) = (
            format!("small-{token}@guichet.test"),
            format!("big-{token}@guichet.test"),
        );
        // a second small one after the big one: on SQLite each small mail
        // goes in with its bytes in one statement, which must find its own
        // row (not the row its Message-ID's trigger inserted)
        let other = b"Subject: other\r\n\r\nbonjour\r\n".to_vec();
        let other_id = format!("other-{token}@guichet.test");
        let mut tx = store.begin().await.unwrap();
        for (message_id, raw) in [(&small_id, &small), (&big_id, &big), (&other_id, &other)] {
            tx.enqueue_mail(&NewMail {
                ticket_id: Some(ticket),
                kind: "ack",
                envelope_from: "support@example.test",
                recipients: "ann@example.test",
                message_id,
                raw,
                now: t0(),
            })
            .await
            .unwrap();
        }
        for id in [&small_id, &big_id, &other_id] {
            let found = tx
                .ticket_of_message_ids(std::slice::from_ref(id))
                .await
                .unwrap();
            assert_eq!(
                found.map(|f| f.0),
                Some(ticket),
                "{name}: the queued mail's id {id} threads"
            );
        }
        tx.commit().await.unwrap();
        if let Store::Sqlite(p) = store {
            // as an older Guichet queued it: the bytes in the row
            sqlx::query(
                "INSERT INTO outbox_mail (ticket_id, kind, envelope_from, recipients, message_id, raw, created_at, next_attempt_at) \
                 VALUES ($1, 'ack', 'support@example.test', 'ann@example.test', 'old@guichet.test', $2, $3, $3)",
            )
            .bind(ticket)
            .bind(&b"Subject: old\r\n\r\nin the row\r\n"[..])
            .bind(t0())
            .execute(p)
            .await
            .unwrap();
        }
        let rows = store
            .claim_due_mail(t0(), Duration::minutes(5), 10)
            .await
            .unwrap();
        let raw_of = |id: &str| {
            rows.iter()
                .find(|r| r.message_id == id)
                .map(|r| r.raw.clone())
        };
        assert_eq!(raw_of(&small_id), Some(small.clone()), "{name}");
        assert_eq!(raw_of(&other_id), Some(other.clone()), "{name}");
        let big_row = rows
            .iter()
            .find(|r| r.message_id == big_id)
            .expect("the big one");
        let big_raw = if big_row.raw.is_empty() {
            store.outbox_mail_raw(big_row.id).await.unwrap()
        } else {
            big_row.raw.clone()
        };
        assert_eq!(big_raw, big, "{name}");
        if matches!(store, Store::Sqlite(_)) {
            assert!(big_row.raw.is_empty(), "a big mail is read when it is sent");
            assert_eq!(
                raw_of("old@guichet.test"),
                Some(b"Subject: old\r\n\r\nin the row\r\n".to_vec())
            );
        }
    }
}

/// Several daemons run retention at once on one PostgreSQL database: each
/// passes over the rows another one holds instead of waiting for them. Two
/// daemons that picked the same batch used to wait on each other's rows in
/// different orders, and PostgreSQL ended one of them as a deadlock
/// (`run --once` failed; CI, 2026-12-04). Here another transaction holds
/// one row of each kind retention empties or removes.
#[tokio::test]
async fn retention_passes_over_rows_another_daemon_holds() {
    use sqlx::Connection;
    let url = fresh_pg_database().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let (ticket, other) = (new_ticket(&store, "A").await, new_ticket(&store, "B").await);
    enqueue_mails(&store, 3, t0()).await;
    store.mails_sent(&[1, 2, 3], t0()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let mut raws = Vec::new();
    for key in ["r1", "r2"] {
        raws.push(tx.insert_raw(&raw(key)).await.unwrap().unwrap());
    }
    for _ in 0..2 {
        tx.record_auto_reply("robot@example.test", t0())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    for _ in 0..3 {
        queue_event(&store, ticket, &["https://hooks.example.test/a"], t0()).await;
    }
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE webhook_outbox SET delivered_at = $1")
        .bind(t0())
        .execute(&mut holder)
        .await
        .unwrap();

    let mut held = holder.begin().await.unwrap();
    for sql in [
        "SELECT 1 FROM outbox_mail WHERE id = 2 FOR UPDATE".to_string(),
        format!("SELECT 1 FROM tickets WHERE id = {other} FOR UPDATE"),
        format!(
            "SELECT 1 FROM raw_messages WHERE id = {} FOR UPDATE",
            raws[0]
        ),
        "SELECT 1 FROM webhook_outbox WHERE id = (SELECT MIN(id) FROM webhook_outbox) FOR UPDATE"
            .to_string(),
        "SELECT 1 FROM auto_replies LIMIT 1 FOR UPDATE".to_string(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *held)
            .await
            .unwrap();
    }
    let later = t0() + Duration::days(400);
    // each step would wait for `held` (for ever, as `held` waits for this
    // test) if it did not pass over the held row
    let emptied = within("sent bodies", store.clear_sent_mail_bodies(later, 100)).await;
    assert_eq!(emptied, 2, "the held mail is left for its holder");
    let mut tx = store.begin().await.unwrap();
    let clocks = within("ticket clocks", tx.ticket_clocks(&[ticket, other])).await;
    assert_eq!(ids(&clocks, |c| c.0), [ticket], "the held ticket is left");
    let emptied = within("raw mails", tx.empty_raw_mails(&raws)).await;
    assert_eq!(emptied, 1, "the held raw mail is left");
    tx.commit().await.unwrap();
    let emptied = within("payloads", store.clear_delivered_payloads(later, 100)).await;
    assert_eq!(emptied, 2, "the held payload is left");
    let forgotten = within("auto replies", store.forget_auto_replies(later)).await;
    assert_eq!(forgotten, 1, "the held auto-reply record is left");

    // once the other daemon lets go, the rest is done, and nothing twice
    held.rollback().await.unwrap();
    assert_eq!(store.clear_sent_mail_bodies(later, 100).await.unwrap(), 1);
    assert_eq!(store.clear_sent_mail_bodies(later, 100).await.unwrap(), 0);
    let mut tx = store.begin().await.unwrap();
    let clocks = tx.ticket_clocks(&[ticket, other]).await.unwrap();
    assert_eq!(ids(&clocks, |c| c.0), [ticket, other]);
    assert_eq!(tx.empty_raw_mails(&raws).await.unwrap(), 1);
    assert_eq!(tx.empty_raw_mails(&raws).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(store.clear_delivered_payloads(later, 100).await.unwrap(), 1);
    assert_eq!(store.clear_delivered_payloads(later, 100).await.unwrap(), 0);
    assert_eq!(store.forget_auto_replies(later).await.unwrap(), 1);
}

/// `step`'s result, or a panic naming `what` when it waits 10 s (for a
/// row lock).
async fn within<T>(what: &str, step: impl std::future::Future<Output = anyhow::Result<T>>) -> T {
    tokio::time::timeout(StdDuration::from_secs(10), step)
        .await
        .unwrap_or_else(|_| panic!("{what}: waited for a row another daemon holds"))
        .unwrap_or_else(|e| panic!("{what}: {e:#}"))
}

/// Every index costs a B-tree write for each row inserted and each change
/// of its columns (a sent mark rewrites `sent_at`). An index whose columns
/// begin another index's on the same table serves no lookup the longer
/// one cannot: it only costs (issue 17). Unique indexes enforce something
/// and partial ones cover other rows, so they are left out of the
/// comparison as the shorter one.
#[tokio::test]
async fn no_index_repeats_the_leading_columns_of_another() {
    let (_dir, stores) = backends().await;
    for store in &stores {
        let indexes = index_columns(store).await;
        assert!(
            indexes.iter().any(|i| i.name == "outbox_mail_due"),
            "the index listing found no outbox_mail_due: {indexes:?}"
        );
        let mut repeated = Vec::new();
        for short in indexes.iter().filter(|i| !i.unique && !i.partial) {
            for long in &indexes {
                if long.name != short.name
                    && long.table == short.table
                    && long.columns.len() >= short.columns.len()
                    && long.columns[..short.columns.len()] == short.columns[..]
                {
                    repeated.push(format!(
                        "{}.{} {:?} begins {} {:?}",
                        short.table, short.name, short.columns, long.name, long.columns
                    ));
                }
            }
        }
        assert!(
            repeated.is_empty(),
            "{}: redundant indexes: {repeated:#?}",
            if store.is_shared() {
                "PostgreSQL"
            } else {
                "SQLite"
            }
        );
    }
}

#[derive(Debug)]
struct IndexColumns {
    table: String,
    name: String,
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

/// Every index of the schema with its key columns in order.
async fn index_columns(store: &Store) -> Vec<IndexColumns> {
    let rows: Vec<(String, String, bool, bool, String)> = match store {
        Store::Sqlite(p) => sqlx::query_as(
            "SELECT m.name, il.name, il.\"unique\", il.partial, \
                    (SELECT group_concat(name, ',') FROM \
                       (SELECT ii.name FROM pragma_index_info(il.name) ii ORDER BY ii.seqno)) \
             FROM sqlite_master m, pragma_index_list(m.name) il \
             WHERE m.type = 'table' AND m.name NOT LIKE '_sqlx%'",
        )
        .fetch_all(p)
        .await
        .expect("SQLite index list"),
        Store::Postgres(p) => sqlx::query_as(
            "SELECT t.relname::text, i.relname::text, ix.indisunique, ix.indpred IS NOT NULL, \
                    (SELECT string_agg(a.attname::text, ',' ORDER BY k.n) \
                     FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) \
             FROM pg_index ix \
             JOIN pg_class t ON t.oid = ix.indrelid \
             JOIN pg_class i ON i.oid = ix.indexrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = current_schema() AND t.relname NOT LIKE '_sqlx%'",
        )
        .fetch_all(p)
        .await
        .expect("PostgreSQL index list"),
    };
    rows.into_iter()
        .map(|(table, name, unique, partial, columns)| IndexColumns {
            table,
            name,
            columns: columns.split(',').map(str::to_owned).collect(),
            unique,
            partial,
        })
        .collect()
}
