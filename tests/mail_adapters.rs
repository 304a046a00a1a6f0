//! The IMAP and SMTP adapters against the real servers of the rig
//! (Dovecot, Postfix): every TLS mode, the ingest operations on a fresh
//! mailbox, IDLE, dropped connections, and how SMTP failures are classified.

mod support;

use std::time::{Duration, Instant};

use guichet::adapters::imap::{ImapError, Mailbox, News, PROCESSED_KEYWORD};
use guichet::adapters::smtp::{SendError, SmtpSender};
use guichet::settings::{Secret, TlsMode};
use support::*;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);
const ALL_TLS_MODES: [TlsMode; 3] = [TlsMode::None, TlsMode::StartTls, TlsMode::Implicit];

fn subject_of(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .lines()
        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        .unwrap_or_default()
}

/// A fresh mailbox holding `n` messages with subjects `m0`, `m1`, ...
async fn mailbox_with(prefix: &str, n: usize) -> String {
    let user = fresh_user(prefix);
    for i in 0..n {
        deliver_lmtp(
            &user,
            &simple_message("c@example.net", &user, &format!("m{i}"), "body"),
        )
        .await;
    }
    wait_for_messages(&user, n, WAIT).await;
    user
}

// ---------------------------------------------------------------- IMAP

#[tokio::test]
async fn imap_connects_in_every_tls_mode_and_selects_the_folder() {
    let user = mailbox_with("modes", 1).await;
    for tls in ALL_TLS_MODES {
        let mut mailbox = Mailbox::connect(&rig().imap_settings(&user, tls))
            .await
            .unwrap_or_else(|e| panic!("{tls:?}: {e}"));
        assert!(mailbox.uid_validity() > 0, "{tls:?}");
        assert!(mailbox.supports_idle(), "{tls:?}: Dovecot offers IDLE");
        assert_eq!(mailbox.uids_after(0).await.unwrap(), [1], "{tls:?}");
        mailbox.logout().await.unwrap();
    }
}

#[tokio::test]
async fn imap_tls_checks_the_certificate() {
    let user = fresh_user("tls");
    for tls in [TlsMode::StartTls, TlsMode::Implicit] {
        let mut settings = rig().imap_settings(&user, tls);
        settings.ca_file = None; // the rig's CA is not a public root
        let err = Mailbox::connect(&settings).await.unwrap_err();
        println!("{tls:?} without the rig's CA: {err}");
        assert!(matches!(err, ImapError::Tls { .. }), "{tls:?}: {err}");
        assert!(err.to_string().starts_with("cannot set up TLS"), "{err}");
    }
    // Implicit TLS against the plain port: a TLS error, not a hang.
    let mut settings = rig().imap_settings(&user, TlsMode::Implicit);
    settings.port = rig().imap_port;
    let started = Instant::now();
    let err = Mailbox::connect(&settings).await.unwrap_err();
    assert!(matches!(err, ImapError::Tls { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut settings = rig().imap_settings(&user, TlsMode::Implicit);
    settings.ca_file = Some("/nonexistent/ca.pem".into());
    let err = Mailbox::connect(&settings).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[tokio::test]
async fn imap_login_failure_is_clean_and_keeps_the_password_secret() {
    let user = fresh_user("login");
    let mut settings = rig().imap_settings(&user, TlsMode::None);
    settings.password = Secret::new("hunter2-Wrong");
    let err = Mailbox::connect(&settings).await.unwrap_err();
    println!("wrong IMAP password: {err}");
    assert!(err.is_login_refused(), "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.starts_with("cannot log in to IMAP server"), "{text}");
    assert!(text.contains(&user), "{text}");
    assert!(!text.contains("hunter2"), "password leaked: {text}");

    let mut settings = rig().imap_settings(&user, TlsMode::None);
    settings.folder = "No such folder".into();
    let err = Mailbox::connect(&settings).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot select folder \"No such folder\""),
        "{err}"
    );

    let mut settings = rig().imap_settings(&user, TlsMode::None);
    settings.port = unused_port();
    let err = Mailbox::connect(&settings).await.unwrap_err();
    assert!(matches!(err, ImapError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn uids_after_fetch_mark_and_repair_on_a_fresh_mailbox() {
    let user = mailbox_with("ingest", 3).await;
    let mut mailbox = Mailbox::connect(&rig().imap_settings(&user, TlsMode::None))
        .await
        .unwrap();

    // Arrange: three messages, UIDs 1..3.
    let uids = mailbox.uids_after(0).await.unwrap();
    assert_eq!(uids, [1, 2, 3]);
    assert_eq!(mailbox.uids_after(1).await.unwrap(), [2, 3]);
    // `4:*` matches UID 3 on the server: it must be filtered out.
    assert_eq!(mailbox.uids_after(3).await.unwrap(), Vec::<u32>::new());
    assert_eq!(
        mailbox.uids_after(u32::MAX).await.unwrap(),
        Vec::<u32>::new()
    );

    // Fetch: UID order whatever the order asked, unknown UIDs left out,
    // bytes as the server stores them, nothing marked \Seen.
    let fetched = mailbox.fetch(&[3, 1, 99, 2, 1]).await.unwrap();
    let fetched_uids: Vec<u32> = fetched.iter().map(|m| m.uid).collect();
    assert_eq!(fetched_uids, [1, 2, 3]);
    let stored = fetch_all(&user).await;
    for (mail, raw) in fetched.iter().zip(&stored) {
        assert_eq!(&mail.raw, raw, "uid {}", mail.uid);
    }
    assert_eq!(subject_of(&fetched[2].raw), "m2");
    assert!(mailbox.fetch(&[]).await.unwrap().is_empty());
    for flags in flags_of_all(&user).await {
        assert!(!flags.contains(&"\\Seen".to_string()), "{flags:?}");
    }

    // Mark 1 and 2 as processed (a crash before 3 was marked).
    mailbox.mark_processed(&[2, 1]).await.unwrap();
    mailbox.mark_processed(&[]).await.unwrap();
    let flags = flags_of_all(&user).await;
    for (i, flags) in flags.iter().enumerate() {
        let marked = i < 2;
        assert_eq!(
            flags.contains(&"\\Seen".to_string()),
            marked,
            "msg {i}: {flags:?}"
        );
        assert_eq!(
            flags.contains(&PROCESSED_KEYWORD.to_string()),
            marked,
            "msg {i}: {flags:?}"
        );
    }

    // Repair after the crash: only 3 lacks the mark.
    assert_eq!(mailbox.unmarked_up_to(3).await.unwrap(), [3]);
    assert_eq!(mailbox.unmarked_up_to(2).await.unwrap(), Vec::<u32>::new());
    assert_eq!(mailbox.unmarked_up_to(0).await.unwrap(), Vec::<u32>::new());
    mailbox.mark_processed(&[3]).await.unwrap();
    assert_eq!(mailbox.unmarked_up_to(3).await.unwrap(), Vec::<u32>::new());
    mailbox.logout().await.unwrap();
}

#[tokio::test]
async fn fetch_batches_many_uids() {
    let count = 450; // three FETCH commands of at most 200 UIDs
    let user = mailbox_with("batch", count).await;
    let mut mailbox = Mailbox::connect(&rig().imap_settings(&user, TlsMode::Implicit))
        .await
        .unwrap();
    let uids = mailbox.uids_after(0).await.unwrap();
    assert_eq!(uids.len(), count);
    let started = Instant::now();
    let fetched = mailbox.fetch(&uids).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(fetched.len(), count);
    for (i, mail) in fetched.iter().enumerate() {
        assert_eq!(mail.uid, uids[i]);
        assert_eq!(subject_of(&mail.raw), format!("m{i}"));
    }
    println!("fetched {count} messages over implicit TLS in {elapsed:?}");
    mailbox.mark_processed(&uids).await.unwrap();
    assert!(
        mailbox
            .unmarked_up_to(uids[count - 1])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn idle_wakes_up_within_3_s_of_a_delivery() {
    let user = fresh_user("idle");
    for tls in [TlsMode::None, TlsMode::Implicit] {
        let mut mailbox = Mailbox::connect(&rig().imap_settings(&user, tls))
            .await
            .unwrap();
        let before = mailbox.uids_after(0).await.unwrap();
        let (_tx, mut shutdown) = watch::channel(false);

        let target = user.clone();
        let delivery = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let raw = simple_message("c@example.net", &target, "wake up", "x");
            deliver_lmtp(&target, &raw).await;
            Instant::now()
        });
        let news = mailbox
            .wait_for_news(Duration::from_secs(60), &mut shutdown)
            .await
            .unwrap();
        let woke = Instant::now();
        let delivered = delivery.await.unwrap();

        assert_eq!(news, News::NewMail, "{tls:?}");
        let latency = woke.saturating_duration_since(delivered);
        println!("{tls:?}: IDLE woke {latency:?} after the LMTP delivery");
        assert!(latency < Duration::from_secs(3), "{tls:?}: {latency:?}");
        let after = mailbox
            .uids_after(*before.last().unwrap_or(&0))
            .await
            .unwrap();
        assert_eq!(after.len(), 1, "{tls:?}: the new message is found");
        mailbox.logout().await.unwrap();
    }
}

#[tokio::test]
async fn wait_for_news_times_out_and_honours_shutdown() {
    let user = fresh_user("quiet");
    for idle in [true, false] {
        let mut settings = rig().imap_settings(&user, TlsMode::None);
        settings.idle = idle;
        let mut mailbox = Mailbox::connect(&settings).await.unwrap();
        assert_eq!(mailbox.supports_idle(), idle);
        let (tx, mut shutdown) = watch::channel(false);

        let started = Instant::now();
        let news = mailbox
            .wait_for_news(Duration::from_millis(400), &mut shutdown)
            .await
            .unwrap();
        assert_eq!(news, News::Timeout, "idle={idle}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(2),
            "idle={idle}: {waited:?}"
        );

        let raise = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(true).unwrap();
            tx
        });
        let started = Instant::now();
        let news = mailbox
            .wait_for_news(Duration::from_secs(60), &mut shutdown)
            .await
            .unwrap();
        assert_eq!(news, News::Shutdown, "idle={idle}");
        assert!(started.elapsed() < Duration::from_secs(2), "idle={idle}");
        let _tx = raise.await.unwrap();
        // Still usable after leaving IDLE.
        assert!(mailbox.uids_after(0).await.unwrap().is_empty());
        // Already raised: returns at once.
        let news = mailbox
            .wait_for_news(Duration::from_secs(60), &mut shutdown)
            .await
            .unwrap();
        assert_eq!(news, News::Shutdown);
        mailbox.logout().await.unwrap();
    }
}

#[tokio::test]
async fn mail_that_arrived_between_two_waits_is_announced_at_once() {
    let user = fresh_user("between");
    let mut mailbox = Mailbox::connect(&rig().imap_settings(&user, TlsMode::None))
        .await
        .unwrap();
    deliver_lmtp(&user, &simple_message("c@example.net", &user, "early", "x")).await;
    wait_for_messages(&user, 1, WAIT).await;
    let (_tx, mut shutdown) = watch::channel(false);

    let started = Instant::now();
    let news = mailbox
        .wait_for_news(Duration::from_secs(30), &mut shutdown)
        .await
        .unwrap();
    assert_eq!(news, News::NewMail);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mailbox.uids_after(0).await.unwrap(), [1]);
}

#[tokio::test]
async fn a_dropped_connection_gives_clean_errors_and_a_reconnect_works() {
    let user = mailbox_with("dropped", 1).await;
    let settings = rig().imap_settings(&user, TlsMode::StartTls);

    // Dropped between commands.
    let mut mailbox = Mailbox::connect(&settings).await.unwrap();
    kick_imap_user(&user);
    // doveadm returns once the server process is told; the socket closes
    // a moment later.
    let kicked = Instant::now();
    let err = loop {
        match mailbox.uids_after(0).await {
            Err(err) => break err,
            Ok(_) if kicked.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(_) => panic!("the connection still works 5 s after the kick"),
        }
    };
    println!("dropped between commands: {err}");
    assert!(err.to_string().starts_with("cannot "), "{err}");
    assert!(!err.to_string().contains(&rig().password), "{err}");
    assert!(!err.is_login_refused());

    // Dropped while idling: the wait ends with an error, not a hang.
    let mut mailbox = Mailbox::connect(&settings).await.unwrap();
    let (_tx, mut shutdown) = watch::channel(false);
    let kicker = tokio::spawn({
        let user = user.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            kick_imap_user(&user);
        }
    });
    let started = Instant::now();
    let result = mailbox
        .wait_for_news(Duration::from_secs(60), &mut shutdown)
        .await;
    kicker.await.unwrap();
    let err = result.unwrap_err();
    println!("dropped while idling: {err}");
    assert!(err.to_string().starts_with("cannot "), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Further use says the connection is gone.
    let err = mailbox.uids_after(0).await.unwrap_err();
    assert!(matches!(err, ImapError::Lost { .. }), "{err}");

    // The caller reconnects.
    let mut mailbox = Mailbox::connect(&settings).await.unwrap();
    assert_eq!(mailbox.uids_after(0).await.unwrap(), [1]);
}

// ---------------------------------------------------------------- SMTP

#[tokio::test]
async fn smtp_sends_in_every_tls_mode_with_and_without_auth() {
    let sender_address = fresh_user("support");
    for tls in ALL_TLS_MODES {
        for authenticate in [false, true] {
            let case = format!("{tls:?} auth={authenticate}");
            let customer = fresh_user("customer");
            let settings = rig().smtp_settings(&sender_address, tls, authenticate);
            let smtp = SmtpSender::new(&settings).unwrap();
            smtp.check().await.unwrap_or_else(|e| panic!("{case}: {e}"));
            let raw = simple_message(&sender_address, &customer, &case, "Your ticket [#1]");

            smtp.send_raw(&address(&sender_address), &[address(&customer)], &raw)
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));

            let got = wait_for_messages(&customer, 1, WAIT).await;
            assert_eq!(subject_of(&got[0]), case);
            assert!(got[0].ends_with(&raw), "{case}: body changed");
        }
    }
}

#[tokio::test]
async fn smtp_delivers_to_the_envelope_not_the_headers() {
    let from = fresh_user("support");
    let (in_header, in_envelope) = (fresh_user("header"), fresh_user("envelope"));
    let smtp = SmtpSender::new(&rig().smtp_settings(&from, TlsMode::None, false)).unwrap();
    let raw = simple_message(&from, &in_header, "envelope wins", "x");
    smtp.send_raw(&address(&from), &[address(&in_envelope)], &raw)
        .await
        .unwrap();
    let second = fresh_user("envelope2");
    smtp.send_raw(
        &address(&from),
        &[address(&in_envelope), address(&second)],
        &raw,
    )
    .await
    .unwrap();
    assert_eq!(wait_for_messages(&in_envelope, 2, WAIT).await.len(), 2);
    assert_eq!(wait_for_messages(&second, 1, WAIT).await.len(), 1);
    assert!(fetch_all(&in_header).await.is_empty());
}

#[tokio::test]
async fn smtp_failures_are_classified_permanent_or_transient() {
    let rig = rig();
    let from = fresh_user("support");
    let smtp = SmtpSender::new(&rig.smtp_settings(&from, TlsMode::StartTls, true)).unwrap();
    let raw = simple_message(&from, "x@example.net", "refused", "x");

    // 550 at RCPT: permanent.
    let refused = address(&format!("someone@{}", rig.refused_domain));
    let err = smtp
        .send_raw(&address(&from), &[refused], &raw)
        .await
        .unwrap_err();
    println!("refused: {err}");
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
    assert!(err.to_string().contains("550"), "{err}");

    // 450 at RCPT: transient.
    let deferred = address(&format!("someone@{}", rig.deferred_domain));
    let err = smtp
        .send_raw(&address(&from), &[deferred], &raw)
        .await
        .unwrap_err();
    println!("deferred: {err}");
    assert!(matches!(err, SendError::Transient(_)), "{err}");
    assert!(err.to_string().contains("450"), "{err}");

    // The pooled connection survives refusals.
    let customer = fresh_user("customer");
    smtp.send_raw(&address(&from), &[address(&customer)], &raw)
        .await
        .unwrap();
    wait_for_messages(&customer, 1, WAIT).await;

    // Nobody listening: transient.
    let mut settings = rig.smtp_settings(&from, TlsMode::None, false);
    settings.port = unused_port();
    let err = SmtpSender::new(&settings)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    println!("nobody listening: {err}");
    assert!(matches!(err, SendError::Transient(_)), "{err}");

    // Untrusted certificate: transient (fix the settings, keep the mail).
    let mut settings = rig.smtp_settings(&from, TlsMode::Implicit, false);
    settings.ca_file = None;
    let err = SmtpSender::new(&settings)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    println!("untrusted certificate: {err}");
    assert!(matches!(err, SendError::Transient(_)), "{err}");
}

#[tokio::test]
async fn smtp_session_sends_many_messages_survives_a_refusal_and_delivers_to_the_accepted() {
    let rig = rig();
    let from = fresh_user("support");
    let smtp = SmtpSender::new(&rig.smtp_settings(&from, TlsMode::StartTls, true)).unwrap();
    let customer = fresh_user("customer");
    let mut session = smtp.session().await.unwrap();
    for i in 0..3 {
        let raw = simple_message(&from, &customer, &format!("session {i}"), "x");
        session
            .send_raw(&address(&from), &[address(&customer)], &raw)
            .await
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert!(!session.is_broken(), "after message {i}");
    }
    let refused = address(&format!("someone@{}", rig.refused_domain));
    let raw = simple_message(&from, "x@example.net", "refused", "x");
    let answer = session
        .send_raw(&address(&from), std::slice::from_ref(&refused), &raw)
        .await
        .unwrap();
    assert_eq!(answer.len(), 1, "the only recipient is refused");
    let err = &answer[0].error;
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
    assert!(err.to_string().contains("550"), "{err}");
    // Postfix offers PIPELINING: the refused transaction is reset and the
    // session goes on
    assert!(!session.is_broken(), "RSET after a refused envelope");
    let raw = simple_message(&from, &customer, "after the refusal", "x");
    session
        .send_raw(&address(&from), &[address(&customer)], &raw)
        .await
        .unwrap();
    // one recipient accepted, one refused (5xx), one deferred (4xx): the
    // message goes to the accepted one, the others are listed with the
    // relay's answer, and the session goes on
    let other = fresh_user("other");
    let deferred = address(&format!("someone@{}", rig.deferred_domain));
    let raw = simple_message(&from, &other, "half refused", "x");
    let answer = session
        .send_raw(
            &address(&from),
            &[address(&other), refused.clone(), deferred.clone()],
            &raw,
        )
        .await
        .unwrap();
    assert_eq!(answer.len(), 2, "{answer:?}");
    assert_eq!(answer[0].address, refused.as_str());
    assert!(answer[0].error.is_permanent(), "{:?}", answer[0]);
    assert!(
        answer[0].error.to_string().contains("550"),
        "{:?}",
        answer[0]
    );
    assert_eq!(answer[1].address, deferred.as_str());
    assert!(!answer[1].error.is_permanent(), "{:?}", answer[1]);
    assert!(!session.is_broken(), "the session goes on");
    session.quit().await;
    assert_eq!(wait_for_messages(&customer, 4, WAIT).await.len(), 4);
    let mut session = smtp.session().await.unwrap();
    let raw = simple_message(&from, &other, "a later message", "x");
    session
        .send_raw(&address(&from), &[address(&other)], &raw)
        .await
        .unwrap();
    session.quit().await;
    wait_for_messages(&other, 2, WAIT).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let got_all = fetch_all(&other).await;
    assert_eq!(
        got_all.len(),
        2,
        "the half-refused message and the later one"
    );
    assert!(
        String::from_utf8_lossy(&got_all[0]).contains("half refused"),
        "the accepted recipient got the half-refused message"
    );
}

#[tokio::test]
async fn smtp_login_failure_is_transient_and_keeps_the_password_secret() {
    let from = fresh_user("support");
    let mut settings = rig().smtp_settings(&from, TlsMode::StartTls, true);
    settings.password = Some(Secret::new("hunter2-Wrong"));
    let smtp = SmtpSender::new(&settings).unwrap();

    let err = smtp.check().await.unwrap_err();
    let text = format!("{err} {err:?}");
    println!("wrong SMTP password: {err}");
    assert!(matches!(err, SendError::Transient(_)), "{text}");
    assert!(text.contains("535"), "{text}");
    assert!(!text.contains("hunter2"), "password leaked: {text}");
    assert!(!format!("{smtp:?}").contains("hunter2"));

    let mut settings = rig().smtp_settings(&from, TlsMode::Implicit, false);
    settings.ca_file = Some("/nonexistent/ca.pem".into());
    let err = SmtpSender::new(&settings).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

/// A loopback port with nothing listening (bound, then released).
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A big message goes to lettre in pieces of 256 KiB (adapters::smtp):
/// lines starting with a dot, and a CRLF split between two pieces, must
/// arrive exactly as they were (dot-stuffing carries over the pieces).
#[tokio::test]
async fn smtp_a_big_message_with_dots_at_piece_boundaries_arrives_byte_for_byte() {
    const PIECE: usize = 256 * 1024;
    let rig = rig();
    let from = fresh_user("support");
    let customer = fresh_user("customer");
    let smtp = SmtpSender::new(&rig.smtp_settings(&from, TlsMode::StartTls, true)).unwrap();
    let mut raw = simple_message(&from, &customer, "dots", "");
    raw.truncate(raw.len() - 2); // simple_message ends the empty body with CRLF
    // filler lines up to one piece, then a line starting with a dot
    let fill = |raw: &mut Vec<u8>, upto: usize| {
        while raw.len() + 80 < upto {
            raw.extend_from_slice(&[b'a'; 76]);
            raw.extend_from_slice(b"\r\n");
        }
        let pad = upto - raw.len() - 2;
        raw.extend(std::iter::repeat_n(b'b', pad));
        raw.extend_from_slice(b"\r\n");
    };
    fill(&mut raw, PIECE);
    assert_eq!(raw.len(), PIECE);
    raw.extend_from_slice(b".a dot at the start of the second piece\r\n");
    fill(&mut raw, 2 * PIECE + 1);
    // the CR of this line's end is the last byte of the second piece
    raw.truncate(raw.len() - 1);
    assert_eq!(raw.len(), 2 * PIECE);
    raw.extend_from_slice(b"\n..two dots after a CRLF split between pieces\r\n.\r\nend\r\n");
    let mut session = smtp.session().await.unwrap();
    session
        .send_raw(&address(&from), &[address(&customer)], &raw)
        .await
        .unwrap();
    session.quit().await;
    let got = wait_for_messages(&customer, 1, WAIT).await;
    let body_at = |m: &[u8]| m.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let sent_body = &raw[body_at(&raw)..];
    let got_body = &got[0][body_at(&got[0])..];
    assert!(
        got_body == sent_body,
        "the body changed on the way ({} bytes sent, {} received)",
        sent_body.len(),
        got_body.len()
    );
}
