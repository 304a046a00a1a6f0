//! ClamAV's `clamd` over its socket protocol: `zINSTREAM` to scan bytes,
//! `zPING` to check it is there. TCP or unix socket, one connection per
//! file, everything under one timeout. Fail closed: anything but a clear
//! "OK" or "FOUND" is [`ScanOutcome::Failed`], logged as an error, and the
//! file is refused as "could not be scanned".

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

pub use crate::domain::ScanOutcome;
use crate::settings::ClamdAddress;

/// Bytes per INSTREAM chunk. clamd's own default StreamMaxLength is 25 MB;
/// the chunk size only bounds our writes.
const CHUNK_BYTES: usize = 64 * 1024;
/// clamd's replies are one short line; anything longer is not clamd.
const MAX_REPLY_BYTES: usize = 4096;
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Stream `bytes` to clamd and read its verdict, all within `timeout`.
pub async fn scan(addr: &ClamdAddress, bytes: &[u8], timeout: Duration) -> ScanOutcome {
    let outcome = match tokio::time::timeout(timeout, scan_untimed(addr, bytes)).await {
        Ok(Ok(reply)) => parse_reply(&reply),
        Ok(Err(e)) => ScanOutcome::Failed(format!("{e:#}")),
        Err(_) => ScanOutcome::Failed(format!("no answer within {timeout:?}")),
    };
    if let ScanOutcome::Failed(why) = &outcome {
        tracing::error!(
            clamd = %describe(addr),
            size = bytes.len(),
            %why,
            "ANTIVIRUS SCAN FAILED: the file is refused as not scanned (fail closed)"
        );
    }
    outcome
}

/// Is clamd there and answering `PONG`?
pub async fn ping(addr: &ClamdAddress) -> anyhow::Result<()> {
    let reply = tokio::time::timeout(PING_TIMEOUT, async {
        match addr {
            ClamdAddress::Tcp { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port)).await?;
                command(s, b"zPING\0").await
            }
            ClamdAddress::Unix(path) => command(UnixStream::connect(path).await?, b"zPING\0").await,
        }
    })
    .await
    .with_context(|| {
        format!(
            "clamd at {} did not answer within {PING_TIMEOUT:?}",
            describe(addr)
        )
    })?
    .with_context(|| format!("cannot ping clamd at {}", describe(addr)))?;
    if reply.trim() != "PONG" {
        bail!("clamd at {} answered {reply:?} to PING", describe(addr));
    }
    Ok(())
}

fn describe(addr: &ClamdAddress) -> String {
    match addr {
        ClamdAddress::Tcp { host, port } => format!("tcp://{host}:{port}"),
        ClamdAddress::Unix(path) => format!("unix:{}", path.display()),
    }
}

async fn scan_untimed(addr: &ClamdAddress, bytes: &[u8]) -> anyhow::Result<String> {
    match addr {
        ClamdAddress::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port))
                .await
                .with_context(|| format!("cannot connect to clamd at tcp://{host}:{port}"))?;
            instream(s, bytes).await
        }
        ClamdAddress::Unix(path) => {
            let s = UnixStream::connect(path)
                .await
                .with_context(|| format!("cannot connect to clamd at unix:{}", path.display()))?;
            instream(s, bytes).await
        }
    }
}

async fn instream<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    bytes: &[u8],
) -> anyhow::Result<String> {
    let sent = async {
        s.write_all(b"zINSTREAM\0").await?;
        for chunk in bytes.chunks(CHUNK_BYTES) {
            s.write_all(&(chunk.len() as u32).to_be_bytes()).await?;
            s.write_all(chunk).await?;
        }
        s.write_all(&0u32.to_be_bytes()).await?;
        s.flush().await
    }
    .await;
    // Past its StreamMaxLength clamd answers and closes while we are still
    // writing: its reply explains the broken pipe better than the pipe.
    match (read_reply(&mut s).await, sent) {
        (Ok(reply), _) if !reply.is_empty() => Ok(reply),
        (_, Err(e)) => Err(e).context("clamd closed the connection while the file was sent"),
        (Ok(_), Ok(())) => bail!("clamd closed the connection without a verdict"),
        (Err(e), Ok(())) => Err(e).context("cannot read clamd's verdict"),
    }
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    cmd: &[u8],
) -> anyhow::Result<String> {
    s.write_all(cmd).await?;
    read_reply(&mut s).await
}

/// Read up to the NUL that ends a z-command reply (or end of stream).
async fn read_reply<S: AsyncRead + Unpin>(s: &mut S) -> anyhow::Result<String> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            reply.extend_from_slice(&buf[..end]);
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.len() > MAX_REPLY_BYTES {
            bail!("clamd's reply is longer than {MAX_REPLY_BYTES} bytes");
        }
    }
    Ok(String::from_utf8_lossy(&reply).trim().to_string())
}

/// `stream: OK`, `stream: Eicar-Test-Signature FOUND`,
/// `INSTREAM size limit exceeded. ERROR`, `... ERROR`.
fn parse_reply(reply: &str) -> ScanOutcome {
    let body = reply.strip_prefix("stream:").unwrap_or(reply).trim();
    if body == "OK" {
        ScanOutcome::Clean
    } else if let Some(sig) = body.strip_suffix(" FOUND") {
        ScanOutcome::Infected(sig.trim().to_string())
    } else if reply.contains("size limit") {
        ScanOutcome::Failed(format!("larger than clamd's StreamMaxLength ({reply})"))
    } else {
        ScanOutcome::Failed(format!("unexpected reply from clamd: {reply:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_table() {
        let cases = [
            ("stream: OK", ScanOutcome::Clean),
            (
                "stream: Eicar-Test-Signature.UNOFFICIAL FOUND",
                ScanOutcome::Infected("Eicar-Test-Signature.UNOFFICIAL".into()),
            ),
            (
                "stream: Win.Test.EICAR_HDB-1 FOUND",
                ScanOutcome::Infected("Win.Test.EICAR_HDB-1".into()),
            ),
        ];
        for (reply, want) in cases {
            assert_eq!(parse_reply(reply), want, "{reply}");
        }
        for reply in [
            "INSTREAM size limit exceeded. ERROR",
            "stream: Can't allocate memory ERROR",
            "",
            "PONG",
        ] {
            assert!(
                matches!(parse_reply(reply), ScanOutcome::Failed(_)),
                "{reply}"
            );
        }
    }
}
