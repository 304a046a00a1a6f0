//! Bare protocol clients for the benchmark: LMTP (seeding), SMTP (the bare
//! submit baseline) and IMAP (the bare fetch baseline, and an IDLE watcher
//! for the latency figure). Plain tokio sockets and nothing else, so that
//! the baselines measure the servers and the wire, not a client library.

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// CRLF line endings, dot-stuffing and the final `.` line: `data` as it
/// goes on the wire after SMTP/LMTP `DATA`.
pub fn dot_stuffed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 40 + 8);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in data {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A line-oriented connection (SMTP and LMTP replies).
struct Lines {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    line: String,
}

impl Lines {
    async fn connect(host: &str, port: u16) -> Result<Lines> {
        let tcp = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        tcp.set_nodelay(true)?;
        let (r, w) = tcp.into_split();
        Ok(Lines {
            r: BufReader::with_capacity(64 * 1024, r),
            w,
            line: String::new(),
        })
    }

    /// One (possibly multi-line) reply; its code.
    async fn reply(&mut self) -> Result<u16> {
        loop {
            self.line.clear();
            if self.r.read_line(&mut self.line).await? == 0 {
                bail!("connection closed");
            }
            let code: u16 = self
                .line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .with_context(|| format!("bad reply line {:?}", self.line))?;
            if self.line.as_bytes().get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    }

    async fn expect(&mut self, want: u16, what: &str) -> Result<()> {
        let code = self.reply().await?;
        if code != want {
            bail!(
                "{what}: got {code} ({}), wanted {want}",
                self.line.trim_end()
            );
        }
        Ok(())
    }
}

/// An SMTP or LMTP session: the envelope and its DATA pipelined
/// (RFC 2920: both servers offer PIPELINING), then the message.
pub struct Submission {
    c: Lines,
    lmtp: bool,
}

impl Submission {
    pub async fn smtp(host: &str, port: u16) -> Result<Submission> {
        Self::open(host, port, false).await
    }

    pub async fn lmtp(host: &str, port: u16) -> Result<Submission> {
        Self::open(host, port, true).await
    }

    async fn open(host: &str, port: u16, lmtp: bool) -> Result<Submission> {
        let mut c = Lines::connect(host, port).await?;
        c.expect(220, "greeting").await?;
        let hello = if lmtp {
            "LHLO bench.invalid\r\n"
        } else {
            "EHLO bench.invalid\r\n"
        };
        c.w.write_all(hello.as_bytes()).await?;
        c.expect(250, "hello").await?;
        Ok(Submission { c, lmtp })
    }

    /// Sends one message (`wire` from [`dot_stuffed`]) to `rcpts`.
    pub async fn send(&mut self, from: &str, rcpts: &[&str], wire: &[u8]) -> Result<()> {
        // the parameters lettre (Guichet's client) adds too
        let mut params = String::new();
        if !wire.is_ascii() {
            params.push_str(" BODY=8BITMIME");
        }
        if !from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii()) {
            params.push_str(" SMTPUTF8");
        }
        let mut head = format!("MAIL FROM:<{from}>{params}\r\n");
        for r in rcpts {
            head.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        head.push_str("DATA\r\n");
        self.c.w.write_all(head.as_bytes()).await?;
        self.c.expect(250, "MAIL FROM").await?;
        for r in rcpts {
            self.c.expect(250, &format!("RCPT TO {r}")).await?;
        }
        self.c.expect(354, "DATA").await?;
        self.c.w.write_all(wire).await?;
        // LMTP answers once per recipient, SMTP once
        let answers = if self.lmtp { rcpts.len() } else { 1 };
        for _ in 0..answers {
            self.c.expect(250, "end of DATA").await?;
        }
        Ok(())
    }

    pub async fn quit(mut self) -> Result<()> {
        self.c.w.write_all(b"QUIT\r\n").await?;
        let _ = self.c.reply().await;
        Ok(())
    }
}

/// One IMAP response: its text (literals replaced by `{}`) and literals.
#[derive(Default)]
pub struct Response {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

/// A bare IMAP client: LOGIN, SELECT, UID SEARCH, UID FETCH, IDLE.
pub struct Imap {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    tag: u32,
}

impl Imap {
    pub async fn login(host: &str, port: u16, user: &str, password: &str) -> Result<Imap> {
        let tcp = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to IMAP {host}:{port}"))?;
        tcp.set_nodelay(true)?;
        let (r, w) = tcp.into_split();
        let mut imap = Imap {
            r: BufReader::with_capacity(256 * 1024, r),
            w,
            tag: 0,
        };
        let greeting = imap.response().await?;
        if !greeting.text.starts_with("* OK") {
            bail!("IMAP greeting {:?}", greeting.text);
        }
        imap.command(&format!("LOGIN \"{user}\" \"{password}\""))
            .await?;
        Ok(imap)
    }

    /// Reads one response line, with the literals it announces.
    pub async fn response(&mut self) -> Result<Response> {
        let mut resp = Response::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.r.read_until(b'\n', &mut line).await? == 0 {
                bail!("IMAP connection closed");
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            // a line ending in {N} is followed by N bytes of literal
            if let Some(open) = text.rfind('{')
                && text.ends_with('}')
                && let Ok(n) = text[open + 1..text.len() - 1].parse::<usize>()
            {
                resp.text.push_str(&text[..open]);
                resp.text.push_str("{}");
                let mut literal = vec![0u8; n];
                self.r.read_exact(&mut literal).await?;
                resp.literals.push(literal);
                continue;
            }
            resp.text.push_str(text);
            return Ok(resp);
        }
    }

    /// Sends a command; returns its untagged responses once it is OK.
    pub async fn command(&mut self, cmd: &str) -> Result<Vec<Response>> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.w
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .await?;
        let mut untagged = Vec::new();
        loop {
            let resp = self.response().await?;
            if let Some(rest) = resp.text.strip_prefix(&format!("{tag} ")) {
                if !rest.starts_with("OK") {
                    bail!("IMAP {}: {rest}", cmd.split(' ').next().unwrap_or(cmd));
                }
                return Ok(untagged);
            }
            untagged.push(resp);
        }
    }

    /// SELECT; the number of messages.
    pub async fn select(&mut self, folder: &str) -> Result<u32> {
        let resps = self.command(&format!("SELECT \"{folder}\"")).await?;
        Ok(resps
            .iter()
            .find_map(|r| {
                let t = r.text.strip_prefix("* ")?;
                t.strip_suffix(" EXISTS")?.parse().ok()
            })
            .unwrap_or(0))
    }

    pub async fn uid_search_all(&mut self) -> Result<Vec<u32>> {
        let resps = self.command("UID SEARCH ALL").await?;
        let mut uids: Vec<u32> = resps
            .iter()
            .filter_map(|r| r.text.strip_prefix("* SEARCH"))
            .flat_map(|t| t.split_whitespace().filter_map(|u| u.parse().ok()))
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// `UID FETCH set (UID BODY.PEEK[])`: the messages' bytes.
    pub async fn fetch_bodies(&mut self, uids: &[u32]) -> Result<Vec<Vec<u8>>> {
        let set = uids
            .iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let resps = self
            .command(&format!("UID FETCH {set} (UID BODY.PEEK[])"))
            .await?;
        Ok(resps
            .into_iter()
            .filter(|r| r.text.contains(" FETCH "))
            .filter_map(|mut r| r.literals.pop())
            .collect())
    }

    /// Enters IDLE: afterwards, read with [`Imap::response`].
    pub async fn idle(&mut self) -> Result<()> {
        self.tag += 1;
        self.w
            .write_all(format!("b{} IDLE\r\n", self.tag).as_bytes())
            .await?;
        let resp = self.response().await?;
        if !resp.text.starts_with('+') {
            bail!("IDLE refused: {}", resp.text);
        }
        Ok(())
    }
}
