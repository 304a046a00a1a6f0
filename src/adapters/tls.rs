//! The TLS client configuration every adapter that dials a server shares
//! (IMAP, SMTP with implicit TLS, `doctor`'s probes): rustls with the ring
//! provider, the public web PKI, and an admin's private CA when the
//! settings name one.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsConnector;

/// Root certificates: the public web PKI plus, for a private server, the
/// certificates of `ca_file` (PEM).
pub fn connector(ca_file: Option<&Path>) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut BufReader::new(file)) {
            let cert = cert.map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("cannot use CA file {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "cannot use CA file {}: no PEM certificate in it",
                path.display()
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
