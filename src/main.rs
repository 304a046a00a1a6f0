//! The `guichet` binary: parses the command line and hands over to
//! [`guichet::cli`]. No logic here.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // one crypto provider for every TLS connection (IMAP, SMTP, HTTPS)
    let _ = rustls::crypto::ring::default_provider().install_default();
    guichet::cli::main_with(guichet::cli::Cli::parse()).await
}
