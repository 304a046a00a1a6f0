//! systemd's notification protocol (`sd_notify(3)`), in the few lines it
//! takes: a datagram of `KEY=VALUE` lines to the socket `$NOTIFY_SOCKET`
//! names (a path, or `@name` in the abstract namespace). Outside systemd
//! (no `$NOTIFY_SOCKET`) every call does nothing.

use std::time::Duration;

/// Sends `state` (e.g. `READY=1`, `WATCHDOG=1`, `STATUS=…`). False when
/// there is no socket or the send failed (never fatal: the service works
/// the same, systemd just knows less).
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    send(&path, state).is_ok()
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    let addr = match bytes.first() {
        Some(b'@') => {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(&bytes[1..])?
            }
            #[cfg(not(target_os = "linux"))]
            return Err(std::io::ErrorKind::Unsupported.into());
        }
        Some(b'/') => SocketAddr::from_pathname(path)?,
        _ => return Err(std::io::ErrorKind::InvalidInput.into()),
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// How often to send `WATCHDOG=1`: half the unit's `WatchdogSec=`, when
/// it is set for this process (`$WATCHDOG_USEC`, `$WATCHDOG_PID`).
pub fn watchdog_every() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// `STATUS=` text: one line, no control characters.
pub fn status(text: &str) -> bool {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    notify(&format!("STATUS={line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reaches_the_socket_by_path_and_by_abstract_name() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");

        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("guichet-test-{}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let server = UnixDatagram::bind_addr(&addr).unwrap();
            send(std::ffi::OsStr::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
            let n = server.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"WATCHDOG=1");
        }
        assert!(send(std::ffi::OsStr::new("relative"), "x").is_err());
    }
}
