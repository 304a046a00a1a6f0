//! The connection under the IMAP client: plain TCP (then maybe upgraded
//! by STARTTLS) or TLS, and the TLS handshake that makes the second.

use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{CONNECT_TIMEOUT, ImapError, within};

pub(super) async fn handshake(
    connector: &TlsConnector,
    host: &str,
    tcp: TcpStream,
    server: &str,
) -> Result<TlsStream<TcpStream>, ImapError> {
    let tls_error = |reason: String| ImapError::Tls {
        server: server.to_string(),
        reason,
    };
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| tls_error(format!("{host:?} is not a valid server name: {e}")))?;
    within(
        CONNECT_TIMEOUT,
        server,
        "complete the TLS handshake",
        connector.connect(name, tcp),
    )
    .await?
    .map_err(|e| tls_error(e.to_string()))
}

/// The connection under the IMAP client: plain TCP (then maybe upgraded by
/// STARTTLS) or TLS.
#[derive(Debug)]
pub(super) enum ImapStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
