//! A small HTTP/1.1 webhook receiver on 127.0.0.1 for the end-to-end tests
//! and the benchmark: it records every request with the instant it arrived
//! and answers, per path, the statuses a test scripts (e.g. three 500s, then
//! 200s). Keep-alive is honoured, as real endpoints do, so that the client's
//! connection pool is measured as it will be used. Plain tokio, no crate.
//!
//! [`FaultyEndpoint`] is a broken receiver (accepts and never answers,
//! answers a byte a second, or never speaks TLS) that can recover into a
//! [`Receiver`] on the same address.
#![allow(dead_code)] // the tests and the benchmark use different parts

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When its last byte was read.
    pub at: Instant,
    /// The status it was answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics, with the body, if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not JSON ({e}): {}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `webhook-id` header, which must be there.
    pub fn webhook_id(&self) -> String {
        self.header("webhook-id")
            .unwrap_or_else(|| panic!("{}: no webhook-id header", self.path))
            .to_string()
    }
}

/// What one path answers: the scripted statuses first, then `then`.
#[derive(Debug, Clone)]
struct Script {
    first: VecDeque<u16>,
    then: u16,
    /// Sent with every answer that is not a 2xx.
    retry_after: Option<String>,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    scripts: HashMap<String, Script>,
}

#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1; every path answers 200 until
    /// told otherwise. The server runs on a thread of its own, so that a
    /// test blocked on the `guichet` process still gets its requests
    /// answered.
    pub fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver {
            base,
            state: Arc::default(),
            arrived: Arc::new(Notify::new()),
        };
        let r = receiver.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let r = r.clone();
                    tokio::spawn(async move { r.serve(stream).await });
                }
            });
        });
        receiver
    }

    /// A receiver that serves the connections it is handed (by a
    /// [`FaultyEndpoint`]) and listens nowhere itself.
    fn unstarted() -> Receiver {
        Receiver {
            base: String::new(),
            state: Arc::default(),
            arrived: Arc::new(Notify::new()),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `path` answers `first` in turn, then `then` for ever.
    pub fn script(&self, path: &str, first: &[u16], then: u16) {
        self.script_retry_after(path, first, then, None);
    }

    /// As [`Receiver::script`], failures carrying `Retry-After: retry_after`.
    pub fn script_retry_after(
        &self,
        path: &str,
        first: &[u16],
        then: u16,
        retry_after: Option<&str>,
    ) {
        self.state.lock().unwrap().scripts.insert(
            path.to_string(),
            Script {
                first: first.iter().copied().collect(),
                then,
                retry_after: retry_after.map(str::to_string),
            },
        );
    }

    /// Every request so far, in arrival order.
    pub fn all(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The requests to `path`, in arrival order.
    pub fn to(&self, path: &str) -> Vec<Received> {
        self.all().into_iter().filter(|r| r.path == path).collect()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().received.clear();
    }

    /// Waits until `done` holds for the requests so far; panics with what
    /// arrived after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let all = self.all();
            if done(&all) {
                return all;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let seen: Vec<String> = all
                    .iter()
                    .map(|r| format!("{} {} {}", r.path, r.status, summary(r)))
                    .collect();
                panic!("timed out waiting for {what}; received: {seen:#?}");
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            // the head
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
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            buf.drain(..head_end + 4);
            while buf.len() < length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body: Vec<u8> = buf.drain(..length).collect();
            let at = Instant::now();
            let (status, retry_after) = {
                let mut state = self.state.lock().unwrap();
                let (status, retry_after) = match state.scripts.get_mut(&path) {
                    Some(s) => (s.first.pop_front().unwrap_or(s.then), s.retry_after.clone()),
                    None => (200, None),
                };
                state.received.push(Received {
                    method,
                    path,
                    headers,
                    body,
                    at,
                    status,
                });
                (status, retry_after)
            };
            self.arrived.notify_waiters();
            let answer = if (200..300).contains(&status) {
                "ok"
            } else {
                "scripted failure"
            };
            let retry_after = match retry_after {
                Some(v) if !(200..300).contains(&status) => format!("Retry-After: {v}\r\n"),
                _ => String::new(),
            };
            let response = format!(
                "HTTP/1.1 {status} Scripted\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{retry_after}{}\r\n{answer}",
                answer.len(),
                if close { "Connection: close\r\n" } else { "" },
            );
            if stream.write_all(response.as_bytes()).await.is_err() || close {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

/// `event #ticket id` of a generic JSON body, for failure messages.
pub fn summary(r: &Received) -> String {
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(v) if v.get("event").is_some() => format!(
            "{} #{} {}",
            v["event"].as_str().unwrap_or("?"),
            v["ticket_id"],
            r.header("webhook-id").unwrap_or("-")
        ),
        _ => format!(
            "{} bytes {}",
            r.body.len(),
            r.header("webhook-id").unwrap_or("-")
        ),
    }
}

// ---------------------------------------------------------------------------
// Broken endpoints.

/// How a [`FaultyEndpoint`] misbehaves until it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accepts connections, reads what comes, never writes a byte (a load
    /// balancer in front of a dead backend).
    Blackhole,
    /// Reads the request, then answers one byte a second, for ever.
    SlowLoris,
    /// An `https://` URL whose server accepts the connection, reads the
    /// TLS ClientHello and never answers it.
    StalledTls,
}

/// A broken endpoint on 127.0.0.1 that can be told to recover: from then
/// on, new connections are answered by a [`Receiver`] (over TLS for
/// [`Fault::StalledTls`], with the rig's certificate for 127.0.0.1).
/// Connections accepted while broken stay broken, as they would.
#[derive(Clone)]
pub struct FaultyEndpoint {
    pub fault: Fault,
    /// `http://127.0.0.1:PORT`, or `https://…` for [`Fault::StalledTls`].
    pub base: String,
    /// What it answers once recovered (its `base` is not this one's).
    pub receiver: Receiver,
    recovered: Arc<AtomicBool>,
    /// Connections accepted while broken.
    pub broken_connections: Arc<AtomicUsize>,
}

impl FaultyEndpoint {
    /// `tls_files`: `(certificate chain, key)` PEM files; needed for
    /// [`Fault::StalledTls`] (the rig's `fullchain.pem` and `key.pem`).
    pub fn start(fault: Fault, tls_files: Option<(&std::path::Path, &std::path::Path)>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let scheme = if fault == Fault::StalledTls {
            "https"
        } else {
            "http"
        };
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let acceptor = (fault == Fault::StalledTls).then(|| {
            let (chain, key) = tls_files.expect("a certificate for the TLS endpoint");
            tls_acceptor(chain, key)
        });
        let endpoint = FaultyEndpoint {
            fault,
            base,
            receiver: Receiver::unstarted(),
            recovered: Arc::new(AtomicBool::new(false)),
            broken_connections: Arc::new(AtomicUsize::new(0)),
        };
        let e = endpoint.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let e = e.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        if e.recovered.load(Ordering::SeqCst) {
                            match acceptor {
                                Some(acceptor) => {
                                    if let Ok(tls) = acceptor.accept(stream).await {
                                        e.receiver.serve(tls).await;
                                    }
                                }
                                None => e.receiver.serve(stream).await,
                            }
                        } else {
                            e.broken_connections.fetch_add(1, Ordering::SeqCst);
                            misbehave(e.fault, stream).await;
                        }
                    });
                }
            });
        });
        endpoint
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// New connections are answered properly from now on.
    pub fn recover(&self) {
        self.recovered.store(true, Ordering::SeqCst);
    }
}

async fn misbehave(fault: Fault, mut stream: TcpStream) {
    let mut chunk = [0u8; 16 * 1024];
    match fault {
        // read (so the client's writes never block) and never answer
        Fault::Blackhole | Fault::StalledTls => {
            while let Ok(n) = stream.read(&mut chunk).await {
                if n == 0 {
                    return;
                }
            }
        }
        Fault::SlowLoris => {
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            let answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Padding: ";
            for byte in answer.iter().chain(std::iter::repeat(&b'a')) {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn tls_acceptor(chain: &std::path::Path, key: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut chain_file = std::io::BufReader::new(std::fs::File::open(chain).unwrap());
    let certs: Vec<_> = rustls_pemfile::certs(&mut chain_file)
        .collect::<Result<_, _>>()
        .unwrap();
    let mut key_file = std::io::BufReader::new(std::fs::File::open(key).unwrap());
    let key = rustls_pemfile::private_key(&mut key_file).unwrap().unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
