//! The test support module checked against the rig itself: if these fail,
//! every other integration test's failures mean nothing.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use sqlx::Connection;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn lmtp_delivery_to_a_fresh_user_reads_back_byte_for_byte() {
    let user = fresh_user("support");
    let raw = simple_message(
        "customer@example.net",
        &user,
        "round trip",
        "Hello,\r\n.a line starting with a dot\r\n..and two\r\nbye\r\n",
    );

    deliver_lmtp(&user, &raw).await;

    let messages = wait_for_messages(&user, 1, WAIT).await;
    assert_eq!(messages.len(), 1);
    // Dovecot prepends Return-Path/Delivered-To/Received; the rest is ours.
    assert!(
        messages[0].ends_with(&raw),
        "delivered message differs:\n{}",
        String::from_utf8_lossy(&messages[0])
    );
    let text = String::from_utf8_lossy(&messages[0]);
    assert!(
        text.starts_with("Return-Path: <customer@example.net>"),
        "envelope sender taken from From: {text}"
    );
}

#[tokio::test]
async fn lmtp_with_a_null_sender_looks_like_a_bounce() {
    let user = fresh_user("support");
    let raw = simple_message(
        "MAILER-DAEMON@example.net",
        &user,
        "bounce",
        "undeliverable",
    );
    deliver_lmtp_from("", &user, &raw).await;
    let messages = wait_for_messages(&user, 1, WAIT).await;
    assert!(
        messages[0].starts_with(b"Return-Path: <>"),
        "{}",
        String::from_utf8_lossy(&messages[0])
    );
}

#[tokio::test]
async fn two_fresh_users_see_only_their_own_mail() {
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    assert_ne!(alice, bob);

    deliver_lmtp(
        &alice,
        &simple_message("x@example.net", &alice, "for alice 1", "a1"),
    )
    .await;
    send_smtp(
        "x@example.net",
        &[&bob],
        &simple_message("x@example.net", &bob, "for bob", "b"),
    )
    .await;
    deliver_lmtp(
        &alice,
        &simple_message("x@example.net", &alice, "for alice 2", "a2"),
    )
    .await;

    let for_alice = wait_for_messages(&alice, 2, WAIT).await;
    let for_bob = wait_for_messages(&bob, 1, WAIT).await;
    let subjects = |all: &[Vec<u8>]| -> Vec<String> {
        all.iter()
            .map(|raw| {
                let text = String::from_utf8_lossy(raw);
                text.lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(subjects(&for_alice), ["for alice 1", "for alice 2"]);
    assert_eq!(subjects(&for_bob), ["for bob"]);
    assert!(fetch_all(&fresh_user("nobody")).await.is_empty());
}

#[tokio::test]
async fn smtp_to_another_domain_lands_in_catchall_with_headers_unchanged() {
    let subject = format!("outside {}", unique_token());
    let raw = simple_message(
        &fresh_user("support"),
        "someone@customer.invalid",
        &subject,
        "this never leaves the machine",
    );

    send_smtp("support@example.test", &["someone@customer.invalid"], &raw).await;

    let got = wait_for_subject(&format!("catchall@{}", rig().domain), &subject, WAIT).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("To: someone@customer.invalid"), "{text}");
    assert!(text.contains("this never leaves the machine"), "{text}");
}

#[tokio::test]
async fn the_refused_and_deferred_domains_answer_550_and_450() {
    let rig = rig();
    let raw = simple_message("a@example.test", "b@example.test", "refused", "x");
    let refused = format!("anyone@{}", rig.refused_domain);
    let deferred = format!("anyone@{}", rig.deferred_domain);

    let err = try_send_smtp("a@example.test", &[&refused], &raw)
        .await
        .expect_err("refused domain accepted");
    assert!(err.contains("550"), "{err}");
    let err = try_send_smtp("a@example.test", &[&deferred], &raw)
        .await
        .expect_err("deferred domain accepted");
    assert!(err.contains("450"), "{err}");
}

#[test]
fn fresh_users_and_tokens_do_not_repeat() {
    let users: HashSet<String> = (0..2000).map(|_| fresh_user("x")).collect();
    assert_eq!(users.len(), 2000);
    for user in &users {
        assert!(user.ends_with("-x@example.test"), "{user}");
        address(user);
    }
    assert!(fresh_user("We!rd Prefix").ends_with("-werdprefix@example.test"));
}

#[tokio::test]
async fn fresh_pg_databases_are_separate_and_usable_by_helpdesk() {
    let first = fresh_pg_database().await;
    let second = fresh_pg_database().await;
    assert_ne!(first, second);

    let mut conn = sqlx::PgConnection::connect(&first).await.expect("connect");
    sqlx::raw_sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1);")
        .execute(&mut conn)
        .await
        .expect("helpdesk owns its database");
    let owner: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(owner, "helpdesk");

    let mut other = sqlx::PgConnection::connect(&second).await.expect("connect");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut other)
    .await
    .unwrap();
    assert_eq!(tables, 0, "the second database is empty");
}

#[test]
fn fresh_sqlite_urls_point_into_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let a = fresh_sqlite_url(dir.path());
    let b = fresh_sqlite_url(dir.path());
    assert_ne!(a, b);
    assert!(
        a.starts_with(&format!("sqlite://{}/", dir.path().display())),
        "{a}"
    );
}

#[tokio::test]
async fn clamd_answers_ping() {
    let rig = rig();
    let mut clamd = tokio::net::TcpStream::connect((rig.clamd_host.as_str(), rig.clamd_port))
        .await
        .expect("clamd reachable");
    clamd.write_all(b"zPING\0").await.unwrap();
    let mut answer = Vec::new();
    clamd.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"PONG\0");
}

#[test]
fn the_guichet_binary_is_built_for_the_tests() {
    assert!(guichet_bin().is_file(), "{}", guichet_bin().display());
}
