//! The webhook HTTP client against a real HTTP server on 127.0.0.1 (a tiny
//! one written here on tokio), and our Standard Webhooks signatures checked
//! by an independent verifier: a few lines of Python's standard library
//! (hmac, hashlib, base64), not our code.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use guichet::adapters::webhook_http::WebhookClient;
use guichet::rules::webhooks::{self, Answer};
use guichet::settings::WebhookFormat;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------
// The independent verifier.

/// Standard Webhooks verification, from the specification, in Python's
/// standard library only. Exit 0 and "valid" when one of the `v1,`
/// signatures matches; with SW_CHECK_TIME=1 the timestamp must also be
/// within 5 minutes of now, as receivers' libraries require.
const PYTHON_VERIFIER: &str = r#"
import base64, hashlib, hmac, os, sys, time
secret = os.environ["SW_SECRET"]
msg_id = os.environ["SW_ID"]
timestamp = os.environ["SW_TIMESTAMP"]
signatures = os.environ["SW_SIGNATURE"]
body = sys.stdin.buffer.read()
if secret.startswith("whsec_"):
    key = base64.b64decode(secret[len("whsec_"):])
else:
    key = secret.encode()
signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
ok = any(
    s.startswith("v1,") and hmac.compare_digest(s[3:], expected)
    for s in signatures.split(" ")
)
if os.environ.get("SW_CHECK_TIME") == "1" and abs(time.time() - int(timestamp)) > 300:
    ok = False
print("valid" if ok else "invalid")
sys.exit(0 if ok else 1)
"#;

/// `Some(valid)` from the Python verifier; `None` when python3 is missing
/// (outside CI only: in CI that is a failure).
fn python_verifies(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    check_time: bool,
) -> Option<bool> {
    let child = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_VERIFIER)
        .env("SW_SECRET", secret)
        .env("SW_ID", msg_id)
        .env("SW_TIMESTAMP", timestamp)
        .env("SW_SIGNATURE", signature)
        .env("SW_CHECK_TIME", if check_time { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("python3 is needed for the signature test: {e}");
            }
            println!("SKIPPED: python3 not found ({e})");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        stdout == "valid" || stdout == "invalid",
        "the verifier itself failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.status.success())
}

#[test]
fn our_signatures_verify_with_an_independent_python_implementation() {
    let event = webhooks::demo_event(Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap());
    // A real body, with non-ASCII text, as it goes on the wire.
    let body = serde_json::to_vec(&webhooks::render(WebhookFormat::Discord, &event, None)).unwrap();
    let timestamp = 1_772_357_400_i64;
    let ts = timestamp.to_string();

    for secret in [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        // 32 random bytes, standard base64 with padding.
        "whsec_q3Jd2vH1yQ0b3c5H0m6Ff0y0J2bX1S6k2lq2c6xwVdA=",
        // No prefix: the raw bytes are the key (our documented convention).
        "a plain shared secret",
    ] {
        let signature = webhooks::sign(secret, &event.id, timestamp, &body);
        let Some(valid) = python_verifies(secret, &event.id, &ts, &signature, &body, false) else {
            return;
        };
        assert!(
            valid,
            "python refused our signature for a {}-char secret",
            secret.len()
        );

        // The verifier can say no: a changed body, id, timestamp or key fails.
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        let refusals = [
            python_verifies(secret, &event.id, &ts, &signature, &tampered, false),
            python_verifies(secret, "evt_other", &ts, &signature, &body, false),
            python_verifies(
                secret,
                &event.id,
                &(timestamp + 1).to_string(),
                &signature,
                &body,
                false,
            ),
            python_verifies(
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                &event.id,
                &ts,
                &signature,
                &body,
                false,
            ),
        ];
        assert_eq!(
            refusals,
            [Some(false); 4],
            "secret of {} chars",
            secret.len()
        );
    }

    // And it agrees with the published test vector, so it is the standard's
    // scheme and not merely ours twice.
    assert_eq!(
        python_verifies(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            br#"{"test": 2432232314}"#,
            false,
        ),
        Some(true)
    );
}

// ---------------------------------------------------------------------------
// A tiny HTTP/1.1 server on 127.0.0.1.

#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
enum Reply {
    /// Status line, extra header lines, body.
    With(u16, &'static str, &'static str),
    /// Read the request, then never answer.
    Hang,
    /// Read the request, write `fast` at once, then `slow` one byte a
    /// second, then `a` a second for ever.
    Trickle(&'static str, &'static str),
}

struct Server {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn serve(reply: Reply) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            let log = log.clone();
            tokio::spawn(async move { answer(stream, reply, log).await });
        }
    });
    Server { base, received }
}

async fn answer(mut stream: TcpStream, reply: Reply, log: Arc<Mutex<Vec<Received>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_string();
    let path = request_line.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    log.lock().unwrap().push(Received {
        method,
        path,
        headers,
        body,
    });
    match reply {
        Reply::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
        Reply::Trickle(fast, slow) => {
            if stream.write_all(fast.as_bytes()).await.is_err() {
                return;
            }
            for byte in slow.bytes().chain(std::iter::repeat(b'a')) {
                if stream.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Reply::With(status, extra, body) => {
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    }
}

fn now() -> chrono::DateTime<Utc> {
    Utc::now()
}

#[tokio::test]
async fn a_200_is_delivered_and_the_standard_webhooks_headers_arrive_and_verify() {
    let server = serve(Reply::With(200, "", "ok thanks")).await;
    let client = WebhookClient::new().unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let event = webhooks::demo_event(now());
    let body = serde_json::to_vec(&webhooks::render(WebhookFormat::Json, &event, None)).unwrap();
    let timestamp = now().timestamp();
    let headers = webhooks::headers(&event.id, timestamp, &body, Some(secret));

    let answer = client
        .post(&format!("{}/hook", server.base), &body, &headers)
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body_excerpt, "ok thanks");
    assert_eq!(answer.retry_after, None);
    assert!(answer.latency > Duration::ZERO && answer.latency < Duration::from_secs(5));
    assert_eq!(
        webhooks::classify(Some(answer.status), None, now()),
        Answer::Delivered
    );

    let received = server.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.body, body, "the body arrives byte for byte");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("user-agent"),
        Some(concat!("guichet/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(r.header("webhook-id"), Some(event.id.as_str()));
    let ts = r.header("webhook-timestamp").unwrap().to_string();
    assert_eq!(ts, timestamp.to_string());
    let signature = r.header("webhook-signature").unwrap().to_string();
    // Verified from what the server received, by the independent verifier,
    // including its 5-minute timestamp tolerance.
    if let Some(valid) = python_verifies(secret, &event.id, &ts, &signature, &r.body, true) {
        assert!(valid, "the received request does not verify");
    }
}

#[tokio::test]
async fn without_a_secret_there_is_no_signature_header() {
    let server = serve(Reply::With(204, "", "")).await;
    let client = WebhookClient::new().unwrap();
    let headers = webhooks::headers("evt_X", 1, b"{}", None);
    let answer = client.post(&server.base, b"{}", &headers).await.unwrap();
    assert_eq!(answer.status, 204);
    assert_eq!(answer.body_excerpt, "");
    let r = server.received.lock().unwrap()[0].clone();
    assert_eq!(r.header("webhook-id"), Some("evt_X"));
    assert_eq!(r.header("webhook-signature"), None);
}

#[tokio::test]
async fn a_500_is_retried() {
    let server = serve(Reply::With(500, "", "boom")).await;
    let answer = WebhookClient::new()
        .unwrap()
        .post(&server.base, b"{}", &[])
        .await
        .unwrap();
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body_excerpt, "boom");
    assert_eq!(
        webhooks::classify(Some(answer.status), answer.retry_after.as_deref(), now()),
        Answer::Retry { after: None }
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_that_long() {
    let server = serve(Reply::With(
        429,
        "Retry-After: 7\r\n",
        "{\"retry_after\": 7}",
    ))
    .await;
    let answer = WebhookClient::new()
        .unwrap()
        .post(&server.base, b"{}", &[])
        .await
        .unwrap();
    assert_eq!(answer.status, 429);
    assert_eq!(answer.retry_after.as_deref(), Some("7"));
    let verdict = webhooks::classify(Some(answer.status), answer.retry_after.as_deref(), now());
    assert_eq!(
        verdict,
        Answer::Retry {
            after: Some(Duration::from_secs(7))
        }
    );
    let Answer::Retry { after } = verdict else {
        unreachable!()
    };
    assert_eq!(webhooks::next_delay(0, after, 0.5), Duration::from_secs(7));
}

#[tokio::test]
async fn a_302_is_not_followed_and_is_permanent() {
    let server = serve(Reply::With(302, "Location: /elsewhere\r\n", "")).await;
    let answer = WebhookClient::new()
        .unwrap()
        .post(&format!("{}/hook", server.base), b"{}", &[])
        .await
        .unwrap();
    assert_eq!(answer.status, 302);
    // Give a follow-up request time to arrive, were one made.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let paths: Vec<String> = server
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths, ["/hook"]);
    assert!(matches!(
        webhooks::classify(Some(answer.status), None, now()),
        Answer::Permanent { why } if why.contains("redirects are not followed")
    ));
}

#[tokio::test]
async fn a_hanging_server_times_out_without_leaking_the_url() {
    let server = serve(Reply::Hang).await;
    let client = WebhookClient::with_timeout(Duration::from_millis(300)).unwrap();
    let url = format!("{}/api/webhooks/1/SECRET-TOKEN", server.base);
    let started = Instant::now();
    let err = client.post(&url, b"{}", &[]).await.unwrap_err();
    let elapsed = started.elapsed();
    println!("timeout error: {err}");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(err.contains("timed out"), "{err}");
    assert!(!err.contains("SECRET-TOKEN"), "{err}");
    assert_eq!(
        server.received.lock().unwrap().len(),
        1,
        "the request did reach the server"
    );
    assert_eq!(
        webhooks::classify(None, None, now()),
        Answer::Retry { after: None }
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_without_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/api/webhooks/1/SECRET-TOKEN");
    let err = WebhookClient::new()
        .unwrap()
        .post(&url, b"{}", &[])
        .await
        .unwrap_err();
    println!("refused error: {err}");
    assert!(!err.contains("SECRET-TOKEN"), "{err}");
    assert!(!err.is_empty());
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_before_any_connection() {
    let client = WebhookClient::new().unwrap();
    for url in [
        "http://example.com/api/webhooks/1/SECRET-TOKEN",
        "ftp://127.0.0.1/SECRET-TOKEN",
        "not a url SECRET-TOKEN",
    ] {
        let err = client.post(url, b"{}", &[]).await.unwrap_err();
        println!("refused URL: {err}");
        assert!(!err.contains("SECRET-TOKEN"), "{url}: {err}");
    }
}

#[tokio::test]
async fn only_the_first_two_kib_of_a_large_answer_are_kept() {
    const BIG: &str = concat!(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    // 128 bytes: repeated by the body below to well past 2 KiB.
    let body: &'static str = Box::leak(BIG.repeat(40).into_boxed_str());
    let server = serve(Reply::With(400, "", body)).await;
    let answer = WebhookClient::new()
        .unwrap()
        .post(&server.base, b"{}", &[])
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body_excerpt.len(), 2048);
    assert!(body.starts_with(&answer.body_excerpt));
    assert!(matches!(
        webhooks::classify(Some(400), None, now()),
        Answer::Permanent { .. }
    ));
}

// ---------------------------------------------------------------------------
// Every attempt has a deadline, whatever the peer does.

/// The attempt must end within this of its deadline.
const LATE: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_slow_loris_answer_is_cut_at_the_deadline() {
    // a byte a second: the status line is never finished in time
    let server = serve(Reply::Trickle("", "HTTP/1.1 200 OK\r\nX-Padding: ")).await;
    let client = WebhookClient::with_timeout(Duration::from_millis(1500)).unwrap();
    let started = Instant::now();
    let err = client
        .post(&format!("{}/hook", server.base), b"{}", &[])
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    println!("slow loris: {err} after {elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500) + LATE, "{elapsed:?}");
    assert!(
        err.contains("timed out") || err.contains("deadline"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_at_the_deadline() {
    // accepts, reads the ClientHello, never answers it
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut hello = [0u8; 4096];
            let _ = stream.read(&mut hello).await;
            held.push(stream);
        }
    });
    let client = WebhookClient::with_timeout(Duration::from_millis(1500)).unwrap();
    let started = Instant::now();
    let err = client
        .post(
            &format!("https://127.0.0.1:{port}/api/webhooks/1/SECRET-TOKEN"),
            b"{}",
            &[],
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    println!("stalled TLS: {err} after {elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500) + LATE, "{elapsed:?}");
    assert!(!err.contains("SECRET-TOKEN"), "{err}");
}

#[tokio::test]
async fn a_2xx_whose_body_trickles_is_an_answer_at_the_deadline() {
    // the status is the answer: a body that never ends does not undo it
    let server = serve(Reply::Trickle(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nok",
        "",
    ))
    .await;
    let client = WebhookClient::with_timeout(Duration::from_millis(1500)).unwrap();
    let started = Instant::now();
    let answer = client
        .post(&format!("{}/hook", server.base), b"{}", &[])
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(answer.status, 200);
    assert!(answer.body_excerpt.starts_with("ok"), "{answer:?}");
    assert!(elapsed < Duration::from_millis(1500) + LATE, "{elapsed:?}");
}
