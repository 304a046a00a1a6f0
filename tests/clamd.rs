//! The clamd adapter against a real clamd (the test rig's, EICAR-only
//! signatures) and against servers that misbehave: a closed port and one
//! that accepts and never answers.
//!
//! Where clamd is: `CLAMD_HOST`/`CLAMD_PORT` and `CLAMD_SOCKET`, else the
//! rig's `/tmp/guichet-rig/env`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use guichet::adapters::clamd::{ScanOutcome, ping, scan};
use guichet::rules::attachments::Refusal;
use guichet::settings::ClamdAddress;

/// The EICAR test file, split so that this source file is not itself
/// flagged by scanners.
fn eicar() -> Vec<u8> {
    [
        &b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$"[..],
        b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    ]
    .concat()
}

const RIG_ENV: &str = "/tmp/guichet-rig/env";

fn rig() -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CLAMD_"))
        .collect();
    if !vars.contains_key("CLAMD_PORT") && !vars.contains_key("CLAMD_SOCKET") {
        let Ok(text) = std::fs::read_to_string(RIG_ENV) else {
            panic!("start the test servers: bash scripts/mailrig.sh start /tmp/guichet-rig");
        };
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=')
                && k.starts_with("CLAMD_")
            {
                vars.insert(k.to_string(), v.to_string());
            }
        }
    }
    vars
}

fn tcp() -> ClamdAddress {
    let vars = rig();
    ClamdAddress::Tcp {
        host: vars
            .get("CLAMD_HOST")
            .cloned()
            .unwrap_or("127.0.0.1".into()),
        port: vars
            .get("CLAMD_PORT")
            .expect("CLAMD_PORT")
            .parse()
            .expect("CLAMD_PORT is a port"),
    }
}

fn unix() -> Option<ClamdAddress> {
    rig()
        .get("CLAMD_SOCKET")
        .map(|p| ClamdAddress::Unix(PathBuf::from(p)))
}

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn eicar_is_infected_over_tcp_and_unix_socket() {
    let mut addrs = vec![tcp()];
    addrs.extend(unix());
    for addr in addrs {
        ping(&addr)
            .await
            .unwrap_or_else(|e| panic!("{addr:?}: {e:#}"));
        let got = scan(&addr, &eicar(), TIMEOUT).await;
        match &got {
            ScanOutcome::Infected(sig) if sig.starts_with("Eicar-Test-Signature") => {}
            other => panic!("{addr:?}: EICAR gave {other:?}"),
        }
        let refusal = Refusal::from_scan(&got).expect("infected is a refusal");
        assert_eq!(refusal.code(), "infected");
    }
}

#[tokio::test]
async fn clean_files_are_clean_whatever_their_size() {
    let addr = tcp();
    // Empty, one chunk, and several chunks (the adapter sends 64 KiB ones).
    for size in [0usize, 1000, 3 * 64 * 1024 + 17] {
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let got = scan(&addr, &bytes, TIMEOUT).await;
        assert_eq!(got, ScanOutcome::Clean, "{size} bytes");
        assert_eq!(Refusal::from_scan(&got), None);
    }
}

#[tokio::test]
async fn eicar_split_across_two_chunks_is_found() {
    // The adapter sends 64 KiB chunks: EICAR straddles the first border,
    // so only a stream reassembled in order matches the rig's signature.
    let mut bytes = vec![b'a'; 64 * 1024 - 30];
    bytes.extend(eicar());
    bytes.extend(vec![b'a'; 100]);
    let got = scan(&tcp(), &bytes, TIMEOUT).await;
    assert!(
        matches!(&got, ScanOutcome::Infected(s) if s.starts_with("Eicar")),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_closed_port_fails_fast() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let addr = ClamdAddress::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    let started = Instant::now();
    let got = scan(&addr, b"hello", TIMEOUT).await;
    assert!(
        matches!(&got, ScanOutcome::Failed(why) if why.contains("connect")),
        "{got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        Refusal::from_scan(&got).map(|r| r.code()),
        Some("not_scanned")
    );
    assert!(ping(&addr).await.is_err());
    let missing = ClamdAddress::Unix("/nonexistent/clamd.sock".into());
    assert!(matches!(
        scan(&missing, b"x", TIMEOUT).await,
        ScanOutcome::Failed(_)
    ));
}

#[tokio::test]
async fn a_silent_server_fails_after_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept, read everything, answer nothing, keep the socket open.
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut sock, &mut sink).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let addr = ClamdAddress::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    let timeout = Duration::from_millis(700);
    let started = Instant::now();
    let got = scan(&addr, b"hello", timeout).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(&got, ScanOutcome::Failed(why) if why.contains("no answer")),
        "{got:?}"
    );
    assert!(elapsed >= timeout, "gave up after {elapsed:?}");
    assert!(
        elapsed < timeout + Duration::from_secs(2),
        "took {elapsed:?}"
    );
    server.abort();
}

#[tokio::test]
async fn past_clamds_stream_limit_is_not_scanned() {
    // The rig's clamd has StreamMaxLength 50M.
    let bytes = vec![0u8; 51 * 1024 * 1024];
    let got = scan(&tcp(), &bytes, TIMEOUT).await;
    assert!(
        matches!(&got, ScanOutcome::Failed(why) if why.contains("StreamMaxLength")),
        "{got:?}"
    );
}

/// Steps 1–5 over one message: the policy accepts `eicar.txt` (it is
/// text), the antivirus refuses it; the clean image passes both.
#[tokio::test]
async fn a_message_through_the_whole_gate() {
    use base64::Engine;
    use guichet::rules::attachments::{Policy, check, file_parts};
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let png = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ruby-mail/test.png"
    ))
    .unwrap();
    let raw = format!(
        "From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
         --B\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=eicar.txt\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --B\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=chart.png\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
        b64(&eicar()),
        b64(&png)
    );
    let msg = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    let allowed = vec!["txt".to_string(), "png".to_string()];
    let policy = Policy {
        enabled: true,
        max_size_bytes: 5 << 20,
        allowed_extensions: &allowed,
    };
    let addr = tcp();
    let mut verdicts = Vec::new();
    for part in file_parts(&msg) {
        let mut checked = check(&policy, &part);
        if checked.refusal.is_none() {
            checked.refusal = Refusal::from_scan(&scan(&addr, &part.bytes, TIMEOUT).await);
        }
        verdicts.push((checked.filename, checked.refusal.map(|r| r.code())));
    }
    assert_eq!(
        verdicts,
        vec![
            ("eicar.txt".to_string(), Some("infected")),
            ("chart.png".to_string(), None)
        ]
    );
}
