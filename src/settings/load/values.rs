//! The value parsers: one string of the settings file to one typed value,
//! or the reason it is not one. They know nothing of sections or spans;
//! the section readers (`connections`, `helpdesk`, `attachments`,
//! `webhooks`) call them and report the reason at the value's position.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;

use super::super::{ClamdAddress, MailboxName};
use crate::domain::EmailAddress;

/// Removes `.` components and folds `..` lexically (no filesystem access,
/// symlinks untouched).
pub(super) fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `[metrics] listen`: an IP address of the loopback and a port.
pub(super) fn parse_metrics_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address and port"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "`{text}` is not a loopback address: the listener has no authentication"
        ));
    }
    if addr.port() == 0 {
        return Err(format!("`{text}` has no port"));
    }
    Ok(addr)
}

/// `localhost`, 127.0.0.0/8, `::1` (and `::ffff:127.x.y.z`).
pub(super) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

pub(super) fn check_host(host: &str) -> Result<(), String> {
    if let Some((scheme, _)) = host.split_once("://") {
        return Err(format!(
            "`{host}` is a URL: give the host name only, without `{scheme}://`"
        ));
    }
    if host.contains(char::is_whitespace) || host.contains(['/', '@']) {
        return Err(format!("`{host}` is not a host name"));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if host.contains(':') && bare.parse::<IpAddr>().is_err() {
        return Err(format!("`{host}` has a port in it: put the port in `port`"));
    }
    Ok(())
}

/// `tcp://host:port` or `unix:/path` (`unix:///path` too).
pub(super) fn parse_clamd(text: &str) -> Result<ClamdAddress, String> {
    if let Some(rest) = text.strip_prefix("tcp://") {
        let rest = rest.trim_end_matches('/');
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err(format!("`{text}` has no port"));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || check_host(host).is_err() {
            return Err(format!("`{text}` has no valid host"));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(ClamdAddress::Tcp {
                host: host.to_string(),
                port,
            }),
            _ => Err(format!("`{port}` is not a port number from 1 to 65535")),
        }
    } else if let Some(rest) = text.strip_prefix("unix:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err("`unix:` has no socket path".into());
        }
        Ok(ClamdAddress::Unix(PathBuf::from(path)))
    } else {
        Err(format!("`{text}` is neither `tcp://…` nor `unix:…`"))
    }
}

/// `sqlite://relative` → `sqlite:///base/relative`; PostgreSQL URLs as written.
pub(super) fn database_url(text: &str, base_dir: &Path) -> Result<String, String> {
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return match url::Url::parse(text) {
            Ok(u) if u.host().is_some() => Ok(text.to_string()),
            Ok(_) => Err("the PostgreSQL URL has no host".into()),
            Err(e) => Err(format!("not a valid PostgreSQL URL ({e})")),
        };
    }
    let Some(rest) = lower
        .starts_with("sqlite:")
        .then(|| &text["sqlite:".len()..])
    else {
        return Err(format!(
            "`{text}` is neither a `sqlite:` nor a `postgres://` URL"
        ));
    };
    if rest.starts_with(":memory:") {
        return Ok(text.to_string());
    }
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err("the SQLite URL has no file path".into());
    }
    let absolute = clean(&base_dir.join(path));
    let mut url = format!("sqlite://{}", absolute.display());
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Ok(url)
}

pub(super) fn check_webhook_url(text: &str) -> Result<(), String> {
    let u = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    let host = match u.host() {
        Some(h) => h,
        None => return Err(format!("`{text}` has no host")),
    };
    let loopback = match &host {
        url::Host::Domain(d) => is_loopback_host(d),
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => is_loopback_host(&a.to_string()),
    };
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "plain `http://` to `{host}`, which is not a loopback host: events would travel unencrypted"
        )),
        other => Err(format!("`{other}://` is not a web address")),
    }
}

/// `whsec_<base64>` must decode; any other text is used as the key itself.
pub(super) fn check_webhook_secret(secret: &str) -> Result<(), String> {
    let Some(encoded) = secret.strip_prefix("whsec_") else {
        return Ok(());
    };
    match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(()),
        Ok(_) => Err("the part after `whsec_` is empty".into()),
        Err(_) => Err("the part after `whsec_` is not valid base64".into()),
    }
}

/// An address as written in the settings.
pub(super) fn parse_address(text: &str) -> Result<EmailAddress, String> {
    let trimmed = text.trim();
    if trimmed.contains([',', ';', '<', '>', '"', '(', ')', '[', ']', '\\', ':']) {
        return Err(format!("`{trimmed}` is not a single plain address"));
    }
    let address = EmailAddress::parse(trimmed)?;
    let domain = address.domain();
    if domain.starts_with(['.', '-'])
        || domain.ends_with(['.', '-'])
        || domain.contains("..")
        || address.local_part().starts_with('.')
        || address.local_part().ends_with('.')
    {
        return Err(format!("`{trimmed}` is not an email address"));
    }
    Ok(address)
}

/// `Example Support <support@example.com>`, `"Quoted" <a@b>` or `a@b`.
pub(super) fn parse_mailbox(text: &str) -> Result<MailboxName, String> {
    let text = text.trim();
    let Some(open) = text.find('<') else {
        return Ok(MailboxName {
            name: None,
            address: parse_address(text)?,
        });
    };
    let Some(inner) = text[open + 1..].strip_suffix('>') else {
        return Err(format!(
            "`{text}` has a `<` without a closing `>` at the end"
        ));
    };
    let name = text[..open].trim().trim_matches('"').trim();
    if name.chars().any(char::is_control) {
        return Err("the name contains a control character".into());
    }
    Ok(MailboxName {
        name: (!name.is_empty()).then(|| name.to_string()),
        address: parse_address(inner)?,
    })
}
