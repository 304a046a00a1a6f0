//! Failing passes and the daemon's health, as decisions without I/O: how
//! long a loop waits after a failed pass (exponential back-off, capped
//! near a minute, one log line per step), when a store fault pauses
//! intake and when it is over, and what `/healthz`, `/readyz` and
//! `/metrics` answer.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::Fault;

/// The first wait after a failed pass.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest wait: a store fault that clears is noticed within this.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The wait after the `failures`-th failed pass in a row (from 1):
/// 1 s, 2, 4 … 32, then 60 s.
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

/// Intake paused by a store fault, since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paused {
    pub fault: Fault,
    pub since: DateTime<Utc>,
}

/// A loop's failed passes in a row, and the store fault among them.
#[derive(Debug, Default, Clone)]
pub struct Streak {
    failures: u32,
    paused: Option<Paused>,
}

/// What to do after a failed pass: wait `delay`, and say so once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    pub delay: Duration,
    /// Failed passes in a row, this one included.
    pub failures: u32,
    /// The store fault in force (this pass's, or an earlier one's when
    /// this pass failed for another reason: only a pass that works ends it).
    pub paused: Option<Paused>,
    /// This pass began the pause.
    pub newly_paused: bool,
}

/// A pass worked after failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub failures: u32,
    /// The pause this ends, if the failures were a store fault.
    pub paused: Option<Paused>,
}

impl Streak {
    /// A pass failed, because of the store `fault` or of something else.
    pub fn fail(&mut self, fault: Option<Fault>, now: DateTime<Utc>) -> Failed {
        self.failures = self.failures.saturating_add(1);
        let newly_paused = fault.is_some() && self.paused.is_none();
        if let Some(fault) = fault {
            let since = self.paused.map_or(now, |p| p.since);
            self.paused = Some(Paused { fault, since });
        }
        Failed {
            delay: delay(self.failures),
            failures: self.failures,
            paused: self.paused,
            newly_paused,
        }
    }

    /// A pass worked: the streak ends. `Some` when there was one.
    pub fn succeed(&mut self) -> Option<Recovered> {
        let ended = (self.failures > 0).then_some(Recovered {
            failures: self.failures,
            paused: self.paused,
        });
        *self = Streak::default();
        ended
    }

    pub fn paused(&self) -> Option<Paused> {
        self.paused
    }
}

/// The daemon's health as the listener shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthView {
    pub paused: Option<Paused>,
    /// Passes failed by a store fault since start, per fault.
    pub store_errors: Vec<(Fault, u64)>,
}

/// An HTTP answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

const TEXT: &str = "text/plain; charset=utf-8";
/// Prometheus' text exposition format.
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the listener answers a GET of `path` (its query ignored).
pub fn answer(path: &str, view: &HealthView) -> Answer {
    let path = path.split('?').next().unwrap_or("");
    let text = |status, body: String| Answer {
        status,
        content_type: TEXT,
        body,
    };
    match path {
        "/healthz" => text(200, "ok\n".into()),
        "/readyz" => match view.paused {
            None => text(200, "ready\n".into()),
            Some(p) => text(
                503,
                format!(
                    "not ready: intake paused: {} since {}\n",
                    p.fault,
                    p.since.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            ),
        },
        "/metrics" => Answer {
            status: 200,
            content_type: PROMETHEUS,
            body: metrics_text(view),
        },
        _ => text(404, "not found: try /healthz, /readyz or /metrics\n".into()),
    }
}

/// What `/readyz` looks at, gathered by the daemon's probe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readiness {
    pub paused: Option<Paused>,
    /// The store answered the last probe (`None`: not probed yet).
    pub store_answers: Option<bool>,
    pub mailboxes: Vec<MailboxReadiness>,
    /// The antivirus answered its last ping; `None` without `[antivirus]`
    /// or before the first ping.
    pub clamd_answers: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MailboxReadiness {
    pub mailbox: String,
    pub connected: bool,
    /// Seconds since its last pass that worked (`None`: none yet).
    pub last_success_seconds: Option<f64>,
}

/// A mailbox not connected whose last good pass is older than this makes
/// the daemon not ready (a connection waiting in IDLE is fine however
/// long it waits).
pub const MAILBOX_STALE_SECONDS: f64 = 300.0;

/// Why the daemon is not ready; empty when it is.
pub fn not_ready(r: &Readiness) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(p) = r.paused {
        why.push(format!(
            "intake paused: {} since {}",
            p.fault,
            p.since.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    match r.store_answers {
        None => why.push("store: not checked yet".into()),
        Some(false) => why.push("store: does not answer".into()),
        Some(true) => {}
    }
    if r.mailboxes.is_empty() {
        why.push("mailbox: not connected yet".into());
    }
    for m in &r.mailboxes {
        if m.connected {
            continue;
        }
        match m.last_success_seconds {
            Some(age) if age <= MAILBOX_STALE_SECONDS => {}
            Some(age) => why.push(format!(
                "mailbox {}: not connected, last read {age:.0} s ago",
                m.mailbox
            )),
            None => why.push(format!("mailbox {}: never read yet", m.mailbox)),
        }
    }
    if r.clamd_answers == Some(false) {
        why.push(
            "antivirus: clamd does not answer (attachments are refused as not scanned)".into(),
        );
    }
    why
}

/// The `/readyz` answer.
pub fn readyz(r: &Readiness) -> Answer {
    let why = not_ready(r);
    if why.is_empty() {
        Answer {
            status: 200,
            content_type: TEXT,
            body: "ready\n".into(),
        }
    } else {
        Answer {
            status: 503,
            content_type: TEXT,
            body: format!("not ready: {}\n", why.join("; ")),
        }
    }
}

/// The metrics, in Prometheus' text format.
pub fn metrics_text(view: &HealthView) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP guichet_up 1 while the daemon runs.\n# TYPE guichet_up gauge\nguichet_up 1\n",
    );
    out.push_str(
        "# HELP guichet_store_errors_total Passes that failed because the store could not \
         write (disk full, read-only, I/O errors, database unreachable).\n\
         # TYPE guichet_store_errors_total counter\n",
    );
    for fault in Fault::ALL {
        let n = view
            .store_errors
            .iter()
            .find(|(f, _)| *f == fault)
            .map_or(0, |(_, n)| *n);
        out.push_str(&format!(
            "guichet_store_errors_total{{fault=\"{}\"}} {n}\n",
            fault.code()
        ));
    }
    out.push_str(
        "# HELP guichet_intake_paused 1 while intake is paused by a store fault.\n\
         # TYPE guichet_intake_paused gauge\n",
    );
    out.push_str(&format!(
        "guichet_intake_paused {}\n",
        u8::from(view.paused.is_some())
    ));
    out.push_str(
        "# HELP guichet_intake_paused_since_seconds When the current pause began (Unix time), 0 when none.\n\
         # TYPE guichet_intake_paused_since_seconds gauge\n",
    );
    out.push_str(&format!(
        "guichet_intake_paused_since_seconds {}\n",
        view.paused.map_or(0, |p| p.since.timestamp())
    ));
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 3, 12, s).unwrap()
    }

    #[test]
    fn delays_double_up_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay(0), FIRST_DELAY);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
        // an hour of failures is about 60 lines, not thousands
        let mut spent = Duration::ZERO;
        let mut lines = 0;
        while spent < Duration::from_secs(3600) {
            lines += 1;
            spent += delay(lines);
        }
        assert!(lines < 70, "{lines}");
    }

    #[test]
    fn a_store_fault_pauses_once_and_a_working_pass_ends_it() {
        let mut s = Streak::default();
        assert_eq!(s.succeed(), None, "nothing to end");
        // (fault of the pass, delay, paused fault, since, newly paused)
        type Step = (Option<Fault>, u64, Option<Fault>, Option<u32>, bool);
        let steps: &[Step] = &[
            (None, 1, None, None, false), // an IMAP hiccup: no pause
            (
                Some(Fault::DiskFull),
                2,
                Some(Fault::DiskFull),
                Some(1),
                true,
            ),
            (
                Some(Fault::DiskFull),
                4,
                Some(Fault::DiskFull),
                Some(1),
                false,
            ),
            // another failure meanwhile does not end the pause
            (None, 8, Some(Fault::DiskFull), Some(1), false),
            // the fault changes: same pause, since its start
            (
                Some(Fault::ReadOnly),
                16,
                Some(Fault::ReadOnly),
                Some(1),
                false,
            ),
        ];
        for (i, &(fault, wait, paused, since, newly)) in steps.iter().enumerate() {
            let f = s.fail(fault, at(i as u32));
            assert_eq!(f.delay.as_secs(), wait, "step {i}");
            assert_eq!(f.failures, i as u32 + 1);
            assert_eq!(f.paused.map(|p| p.fault), paused, "step {i}");
            assert_eq!(f.paused.map(|p| p.since), since.map(at), "step {i}");
            assert_eq!(f.newly_paused, newly, "step {i}");
        }
        let r = s.succeed().unwrap();
        assert_eq!(r.failures, 5);
        assert_eq!(
            r.paused,
            Some(Paused {
                fault: Fault::ReadOnly,
                since: at(1)
            })
        );
        assert_eq!(s.paused(), None);
        assert_eq!(s.fail(None, at(9)).delay, FIRST_DELAY, "a new streak");
        assert_eq!(
            s.succeed(),
            Some(Recovered {
                failures: 1,
                paused: None
            })
        );
    }

    #[test]
    fn readiness() {
        let mailbox = |connected, age: Option<f64>| MailboxReadiness {
            mailbox: "support@imap/INBOX".into(),
            connected,
            last_success_seconds: age,
        };
        let ready = Readiness {
            paused: None,
            store_answers: Some(true),
            mailboxes: vec![mailbox(true, Some(3000.0))],
            clamd_answers: None,
        };
        // (what changes, the reason expected; "" = ready)
        let cases: Vec<(Readiness, &str)> = vec![
            (ready.clone(), ""),
            (
                Readiness {
                    mailboxes: vec![mailbox(false, Some(60.0))],
                    ..ready.clone()
                },
                "",
            ),
            (
                Readiness {
                    mailboxes: vec![mailbox(false, Some(301.0))],
                    ..ready.clone()
                },
                "mailbox support@imap/INBOX: not connected, last read 301 s ago",
            ),
            (
                Readiness {
                    mailboxes: vec![mailbox(false, None)],
                    ..ready.clone()
                },
                "never read yet",
            ),
            (
                Readiness {
                    mailboxes: vec![],
                    ..ready.clone()
                },
                "mailbox: not connected yet",
            ),
            (
                Readiness {
                    store_answers: Some(false),
                    ..ready.clone()
                },
                "store: does not answer",
            ),
            (
                Readiness {
                    store_answers: None,
                    ..ready.clone()
                },
                "store: not checked yet",
            ),
            (
                Readiness {
                    clamd_answers: Some(false),
                    ..ready.clone()
                },
                "antivirus: clamd does not answer",
            ),
            (
                Readiness {
                    clamd_answers: Some(true),
                    ..ready.clone()
                },
                "",
            ),
            (
                Readiness {
                    paused: Some(Paused {
                        fault: Fault::DiskFull,
                        since: at(0),
                    }),
                    ..ready.clone()
                },
                "intake paused: disk full since 2026-03-01T03:12:00Z",
            ),
        ];
        for (r, want) in cases {
            let a = readyz(&r);
            if want.is_empty() {
                assert_eq!((a.status, a.body.as_str()), (200, "ready\n"), "{r:?}");
            } else {
                assert_eq!(a.status, 503, "{r:?}");
                assert!(a.body.contains(want), "{want:?} in {:?}", a.body);
            }
        }
    }

    #[test]
    fn the_listener_answers() {
        let ready = HealthView::default();
        let paused = HealthView {
            paused: Some(Paused {
                fault: Fault::DiskFull,
                since: at(0),
            }),
            store_errors: vec![(Fault::DiskFull, 3), (Fault::Io, 1)],
        };
        assert_eq!(answer("/healthz", &paused).status, 200);
        assert_eq!(answer("/readyz", &ready).status, 200);
        let not_ready = answer("/readyz?verbose", &paused);
        assert_eq!(not_ready.status, 503);
        assert_eq!(
            not_ready.body,
            "not ready: intake paused: disk full since 2026-03-01T03:12:00Z\n"
        );
        assert_eq!(answer("/nope", &ready).status, 404);

        let m = answer("/metrics", &paused);
        assert_eq!(m.status, 200);
        assert!(m.content_type.contains("version=0.0.4"));
        for line in [
            "guichet_up 1",
            "# TYPE guichet_store_errors_total counter",
            "guichet_store_errors_total{fault=\"disk_full\"} 3",
            "guichet_store_errors_total{fault=\"read_only\"} 0",
            "guichet_store_errors_total{fault=\"io_error\"} 1",
            "guichet_store_errors_total{fault=\"unavailable\"} 0",
            "# TYPE guichet_intake_paused gauge",
            "guichet_intake_paused 1",
            "guichet_intake_paused_since_seconds 1772334720",
        ] {
            assert!(m.body.lines().any(|l| l == line), "{line} in:\n{}", m.body);
        }
        let m = metrics_text(&ready);
        assert!(m.lines().any(|l| l == "guichet_intake_paused 0"), "{m}");
        assert!(
            m.lines()
                .any(|l| l == "guichet_intake_paused_since_seconds 0")
        );
        // every sample line is `name{labels} value`
        for l in m.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = l.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{l}");
            assert!(name.starts_with("guichet_"), "{l}");
        }
    }
}
