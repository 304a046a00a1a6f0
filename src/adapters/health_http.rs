//! The `[metrics]` listener: a few lines of HTTP/1.1 on tokio for three
//! GET paths (`/healthz`, `/readyz`, `/metrics`), on a loopback address.
//! Each connection gets one answer and is closed; a request head over
//! 8 KiB or slower than 5 s is dropped. What is answered is decided by
//! `rules::health::answer`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::rules::health::Answer;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` (before the daemon's loops start, so that a port in use
/// is said at once).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers connections on `listener` with `respond(path)` until
/// `shutdown` turns true.
pub async fn serve<F>(listener: TcpListener, respond: F, mut shutdown: watch::Receiver<bool>)
where
    F: Fn(&str) -> Answer + Send + Sync + 'static,
{
    let respond = Arc::new(respond);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let respond = respond.clone();
                    tokio::spawn(async move {
                        let _ = one(stream, &*respond).await;
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

async fn one(
    mut stream: TcpStream,
    respond: &(dyn Fn(&str) -> Answer + Send + Sync),
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 || head.len() + n > MAX_HEAD {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(())) => {}
        _ => return Ok(()),
    }
    let (answer, head_only) = match request_line(&head) {
        Some(("GET", path)) => (respond(path), false),
        Some(("HEAD", path)) => (respond(path), true),
        Some(_) => (plain(405, "only GET and HEAD\n"), false),
        None => (plain(400, "bad request\n"), false),
    };
    stream.write_all(&response(&answer, head_only)).await?;
    stream.shutdown().await
}

fn plain(status: u16, body: &str) -> Answer {
    Answer {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_string(),
    }
}

/// The method and target of a request's first line.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut words = line.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    (words.next().is_none() && version.starts_with("HTTP/1.") && target.starts_with('/'))
        .then_some((method, target))
}

fn response(a: &Answer, head_only: bool) -> Vec<u8> {
    let reason = match a.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        a.status,
        a.content_type,
        a.body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(a.body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        for (head, want) in [
            (
                &b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"[..],
                Some(("GET", "/readyz")),
            ),
            (b"HEAD /metrics HTTP/1.0\n\n", Some(("HEAD", "/metrics"))),
            (b"GET /x?y=1 HTTP/1.1\r\n\r\n", Some(("GET", "/x?y=1"))),
            (b"GET http://evil/ HTTP/1.1\r\n\r\n", None),
            (b"GET / HTTP/2\r\n\r\n", None),
            (b"nonsense\r\n\r\n", None),
            (b"GET  /two-spaces HTTP/1.1\r\n\r\n", None),
        ] {
            assert_eq!(
                request_line(head),
                want,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[tokio::test]
    async fn answers_over_tcp() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            |path: &str| plain(if path == "/readyz" { 503 } else { 200 }, path),
            stopped,
        ));
        let ask = |req: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let got = ask("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{got}"
        );
        assert!(
            got.contains("Content-Length: 7\r\n") && got.ends_with("\r\n\r\n/readyz"),
            "{got}"
        );
        let got = ask("HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            got.starts_with("HTTP/1.1 200 OK\r\n") && got.ends_with("\r\n\r\n"),
            "{got}"
        );
        let got = ask("POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 405"), "{got}");
        stop.send(true).unwrap();
        server.await.unwrap();
    }
}
