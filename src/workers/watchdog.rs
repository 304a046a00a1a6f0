//! The daemon's loops tell the watchdog they are alive: each says it is
//! busy (a pass) or waiting (for news, a timer, a back-off) and for how
//! long at most; a loop past its deadline is stuck. While none is,
//! `WATCHDOG=1` goes to systemd (`WatchdogSec=` in the unit); when one is,
//! it stops, and systemd restarts the daemon. `STATUS=` carries the last
//! mailbox pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::adapters::systemd;

/// How long a pass may take before its loop is called stuck (a backlog of
/// thousands of messages is read in batches, each one a sign of life).
pub const BUSY_LIMIT: Duration = Duration::from_secs(10 * 60);

/// The watchdog's name of the loop reading the mailbox `key` (its
/// checkpoint key): one per mailbox, so that with several mailboxes a
/// stuck one is not hidden by the others' signs of life.
pub fn mailbox_loop(key: &str) -> String {
    format!("mailbox {key}")
}

pub struct Watchdog {
    deadlines: Mutex<HashMap<String, Instant>>,
    /// Raised when a mailbox connection first comes up.
    connected: watch::Sender<bool>,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            deadlines: Mutex::default(),
            connected: watch::Sender::new(false),
        }
    }
}

impl Watchdog {
    pub fn new() -> Arc<Watchdog> {
        Arc::new(Watchdog::default())
    }

    fn set(&self, name: &str, deadline: Instant) {
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        match deadlines.get_mut(name) {
            Some(d) => *d = deadline,
            None => {
                deadlines.insert(name.to_string(), deadline);
            }
        }
    }

    /// `name` starts (or goes on with) a pass.
    pub fn busy(&self, name: &str) {
        self.set(name, Instant::now() + BUSY_LIMIT);
    }

    /// `name` waits up to `d`, then works.
    pub fn waiting(&self, name: &str, d: Duration) {
        self.set(name, Instant::now() + d + BUSY_LIMIT);
    }

    /// `name` ended (a reload, a shutdown): no longer watched.
    pub fn gone(&self, name: &str) {
        self.deadlines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// A mailbox connection is up.
    pub fn connected(&self) {
        self.connected
            .send_if_modified(|c| !std::mem::replace(c, true));
    }

    /// Until a mailbox connection is up, or `limit`; true when it is.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        let mut rx = self.connected.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The loops past their deadline at `now`.
    pub fn stuck(&self, now: Instant) -> Vec<String> {
        let mut out: Vec<String> = self
            .deadlines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, d)| **d < now)
            .map(|(n, _)| n.clone())
            .collect();
        out.sort();
        out
    }
}

/// Sends `WATCHDOG=1` every `every` while no loop is stuck, until
/// `shutdown`.
pub async fn feed(watchdog: Arc<Watchdog>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut said = false;
    loop {
        let stuck = watchdog.stuck(Instant::now());
        if stuck.is_empty() {
            systemd::notify("WATCHDOG=1");
            said = false;
        } else if !said {
            said = true;
            tracing::error!(
                loops = stuck.join(", "),
                "a loop of the daemon is stuck: the systemd watchdog is no longer fed, and restarts the service"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_past_its_deadline_is_stuck() {
        let w = Watchdog::default();
        let t0 = Instant::now();
        w.busy("mailbox");
        w.waiting("mail", Duration::from_secs(5));
        assert!(w.stuck(t0).is_empty());
        assert!(w.stuck(t0 + BUSY_LIMIT - Duration::from_secs(1)).is_empty());
        assert_eq!(
            w.stuck(t0 + BUSY_LIMIT + Duration::from_secs(1)),
            ["mailbox"]
        );
        assert_eq!(
            w.stuck(t0 + BUSY_LIMIT + Duration::from_secs(6)),
            ["mail", "mailbox"]
        );
        w.gone("mailbox");
        assert_eq!(w.stuck(t0 + BUSY_LIMIT + Duration::from_secs(6)), ["mail"]);
    }

    #[test]
    fn each_mailbox_is_watched_on_its_own() {
        let w = Watchdog::default();
        let t0 = Instant::now();
        let (a, b) = (mailbox_loop("a@x/INBOX"), mailbox_loop("b@x/INBOX"));
        w.busy(&a);
        w.busy(&b);
        // b's later signs of life do not hide a being stuck
        std::thread::sleep(Duration::from_millis(200));
        w.busy(&b);
        let later = t0 + BUSY_LIMIT + Duration::from_millis(100);
        assert_eq!(w.stuck(later), std::slice::from_ref(&a));
    }
}
