//! Each endpoint its own lane (issue 26): what a lane may send now, and
//! what one attempt's answer means for the event and for the endpoint's
//! health (its circuit breaker). Pure: the worker passes the endpoint's
//! health, the answer, the time and the jitter, and applies the plan.
//!
//! - **A lane** sends its endpoint's due events, at most [`IN_FLIGHT`] at
//!   once, never two of one ticket at once (the store only hands out a
//!   ticket's oldest undelivered event), so each ticket's events arrive in
//!   order. A lane whose endpoint has not yet answered a 2xx, or whose last
//!   attempt failed, sends one event at a time (a probe) until it does.
//! - **A failure about one event** (a 500, a 408 without `Retry-After`)
//!   backs off that event only ([`super::next_delay`]); the endpoint's other
//!   tickets keep going.
//! - **A failure about the endpoint** (no answer within the deadline, a
//!   refused connection, a TLS failure, 429, 502, 503, 504 or any
//!   `Retry-After`) holds the whole endpoint: its events wait for
//!   [`endpoint_pause`] (5 s doubling to 30 s, with jitter) or the
//!   endpoint's `Retry-After`, whichever is longer, then one probe goes.
//! - **After [`FAILURES_TO_PAUSE`] consecutive failures** of any kind the
//!   endpoint is *paused* (the breaker is open): every failure holds it as
//!   above, one probe at a time. Its first 2xx (or any answer that is not a
//!   failure) closes the breaker and the backlog follows, in order.
//!
//! An event whose endpoint is held keeps its place: it is retried when the
//! endpoint resumes, not after its own back-off, so a recovered endpoint
//! gets its backlog within [`PAUSE_MAX`] plus one deadline.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::retry::{
    Answer, MAX_DELAY, MIN_RETRY_AFTER, classify, endpoint_unavailable, is_dead, next_delay,
};

/// Attempts in flight at once on a healthy endpoint.
pub const IN_FLIGHT: usize = 4;
/// Events claimed at once on a healthy endpoint: a few per slot, so a
/// claim's database round trip is shared.
pub const CLAIM: usize = 4 * IN_FLIGHT;
/// Consecutive failures after which the endpoint is paused.
pub const FAILURES_TO_PAUSE: u32 = 5;
/// The first hold of an endpoint that failed…
pub const PAUSE_BASE: Duration = Duration::from_secs(5);
/// …doubling with each consecutive failure up to this.
pub const PAUSE_MAX: Duration = Duration::from_secs(30);
/// How long a lease outlives the attempts it covers.
pub const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// What Guichet knows of an endpoint: its consecutive failed attempts and,
/// when it is held, until when its events wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    pub failures: u32,
    pub paused_until: Option<DateTime<Utc>>,
}

/// The endpoint's state as `guichet outbox` and the logs show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Its last attempt succeeded (or none failed yet).
    Healthy,
    /// Fewer than [`FAILURES_TO_PAUSE`] consecutive failures.
    Failing,
    /// The breaker is open: one probe at a time, after each pause.
    Paused,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Failing => "failing",
            State::Paused => "paused",
        }
    }
}

impl Health {
    pub fn state(&self) -> State {
        match self.failures {
            0 => State::Healthy,
            n if n < FAILURES_TO_PAUSE => State::Failing,
            _ => State::Paused,
        }
    }

    /// Until when the endpoint's events wait, if that is after `now`.
    pub fn held_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.paused_until.filter(|until| *until > now)
    }
}

/// What a lane does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Claim up to `claim` due events and send them, `in_flight` at once.
    Send { claim: usize, in_flight: usize },
    /// Nothing may go before `until` (the endpoint is held).
    Wait { until: DateTime<Utc> },
}

/// The lane's next step. `proven`: the endpoint answered a 2xx since
/// this lane started (a lane starts with a probe, whatever the health
/// stored by an earlier process says).
pub fn next_step(health: &Health, proven: bool, now: DateTime<Utc>) -> Step {
    if let Some(until) = health.held_until(now) {
        return Step::Wait { until };
    }
    if health.failures > 0 || !proven {
        Step::Send {
            claim: 1,
            in_flight: 1,
        }
    } else {
        Step::Send {
            claim: CLAIM,
            in_flight: IN_FLIGHT,
        }
    }
}

/// The hold after `failures` consecutive failures (1 for the first):
/// `PAUSE_BASE · 2^(failures-1)` capped at `PAUSE_MAX`, times 0.8–1.2 from
/// `jitter` (0..1), never above `PAUSE_MAX`.
pub fn endpoint_pause(failures: u32, jitter: f64) -> Duration {
    let base = 2u32
        .checked_pow(failures.saturating_sub(1))
        .and_then(|factor| PAUSE_BASE.checked_mul(factor))
        .map_or(PAUSE_MAX, |d| d.min(PAUSE_MAX));
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    base.mul_f64(0.8 + 0.4 * jitter).min(PAUSE_MAX)
}

/// One finished attempt, as the worker saw it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// `None`: no answer (deadline passed, connection refused, TLS…).
    pub status: Option<u16>,
    /// The raw `Retry-After` header.
    pub retry_after: Option<&'a str>,
    /// Attempts of this event before this one (0 for its first).
    pub previous_attempts: u32,
    /// When the event was queued: it is dead-lettered after `max_age`.
    pub queued_at: DateTime<Utc>,
    pub max_age: Duration,
    /// When the attempt ended.
    pub now: DateTime<Utc>,
    /// 0..1, drawn by the caller.
    pub jitter: f64,
}

/// What becomes of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        status: u16,
    },
    /// Given up: refused for good (`why`), or too old to try again.
    Dead {
        why: Option<String>,
    },
    Retry {
        at: DateTime<Utc>,
    },
}

/// A change of the endpoint's state worth a log line (and an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The breaker opened.
    Paused { failures: u32, until: DateTime<Utc> },
    /// It answered again after being paused.
    Resumed { after_failures: u32 },
}

/// The plan for one attempt's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub outcome: Outcome,
    pub health: Health,
    pub change: Option<Change>,
}

/// What an attempt's answer means for its event and its endpoint.
pub fn after_attempt(health: Health, a: &Attempt<'_>) -> Plan {
    let answered = |outcome: Outcome| Plan {
        outcome,
        health: Health::default(),
        change: (health.failures >= FAILURES_TO_PAUSE).then_some(Change::Resumed {
            after_failures: health.failures,
        }),
    };
    match classify(a.status, a.retry_after, a.now) {
        Answer::Delivered => answered(Outcome::Delivered {
            status: a.status.unwrap_or(200),
        }),
        // the endpoint answered: it is up, this event is refused
        Answer::Permanent { why } => answered(Outcome::Dead { why: Some(why) }),
        Answer::Retry { after } => {
            let failures = health.failures.saturating_add(1);
            let paused = failures >= FAILURES_TO_PAUSE;
            let hold = (paused || endpoint_unavailable(a.status, a.retry_after)).then(|| {
                let pause = endpoint_pause(failures, a.jitter);
                let pause = match after {
                    Some(asked) => pause.max(asked.clamp(MIN_RETRY_AFTER, MAX_DELAY)),
                    None => pause,
                };
                a.now + chrono::Duration::from_std(pause).unwrap_or(chrono::Duration::hours(1))
            });
            // attempts in flight together may end in any order: the
            // longest hold stands
            let paused_until = match (hold, health.held_until(a.now)) {
                (Some(new), Some(old)) => Some(new.max(old)),
                (new, old) => new.or(old),
            };
            let outcome = if is_dead(a.queued_at, a.now, a.max_age) {
                Outcome::Dead { why: None }
            } else if let Some(until) = paused_until {
                Outcome::Retry { at: until }
            } else {
                let delay = next_delay(a.previous_attempts, after, a.jitter);
                Outcome::Retry {
                    at: a.now
                        + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1)),
                }
            };
            let change = match paused_until {
                Some(until) if paused && health.failures < FAILURES_TO_PAUSE => {
                    Some(Change::Paused { failures, until })
                }
                _ => None,
            };
            Plan {
                outcome,
                health: Health {
                    failures,
                    paused_until,
                },
                change,
            }
        }
    }
}

/// How long the leases of a claim of `claim` events must last: each slot
/// takes its share of the claim one after the other, each attempt up to
/// `deadline`, plus a margin for the database.
pub fn lease(deadline: Duration, claim: usize, in_flight: usize) -> Duration {
    let rounds = claim.div_ceil(in_flight.max(1)).max(1) as u32;
    deadline.saturating_mul(rounds) + LEASE_MARGIN
}

/// How long an idle lane sleeps: until its endpoint's hold ends, and at
/// most `poll` (new events wake it sooner).
pub fn idle_wait(health: &Health, now: DateTime<Utc>, poll: Duration) -> Duration {
    match health.held_until(now) {
        Some(until) => (until - now).to_std().unwrap_or(Duration::ZERO).min(poll),
        None => poll,
    }
}

/// Endpoints with undelivered events that the settings no longer name:
/// their events are given up.
pub fn unknown_endpoints<'a>(pending: &'a [String], configured: &[&str]) -> Vec<&'a str> {
    pending
        .iter()
        .map(String::as_str)
        .filter(|p| !configured.contains(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap()
    }

    fn secs(s: i64) -> chrono::Duration {
        chrono::Duration::seconds(s)
    }

    fn attempt(status: Option<u16>, retry_after: Option<&str>) -> Attempt<'_> {
        Attempt {
            status,
            retry_after,
            previous_attempts: 0,
            queued_at: t0(),
            max_age: Duration::from_secs(3 * 24 * 3600),
            now: t0(),
            jitter: 0.5,
        }
    }

    fn failing(failures: u32) -> Health {
        Health {
            failures,
            paused_until: None,
        }
    }

    #[test]
    fn a_lane_probes_until_its_endpoint_answers_then_widens() {
        let held = Health {
            failures: 1,
            paused_until: Some(t0() + secs(5)),
        };
        let probe = Step::Send {
            claim: 1,
            in_flight: 1,
        };
        let wide = Step::Send {
            claim: CLAIM,
            in_flight: IN_FLIGHT,
        };
        // (health, proven, now, step)
        let cases: &[(Health, bool, DateTime<Utc>, Step)] = &[
            (Health::default(), false, t0(), probe),
            (Health::default(), true, t0(), wide),
            (failing(1), true, t0(), probe),
            (failing(7), true, t0(), probe),
            (
                held,
                true,
                t0(),
                Step::Wait {
                    until: t0() + secs(5),
                },
            ),
            (
                held,
                true,
                t0() + secs(4),
                Step::Wait {
                    until: t0() + secs(5),
                },
            ),
            // the hold is over: one probe
            (held, true, t0() + secs(5), probe),
            (held, false, t0() + secs(60), probe),
            // a stale hold of a healthy endpoint (set by an older pass)
            (
                Health {
                    failures: 0,
                    paused_until: Some(t0() - secs(1)),
                },
                true,
                t0(),
                wide,
            ),
        ];
        for (health, proven, now, want) in cases {
            assert_eq!(
                next_step(health, *proven, *now),
                *want,
                "{health:?}, proven {proven}, at {now}"
            );
        }
    }

    #[test]
    fn the_endpoint_pause_doubles_from_five_seconds_to_thirty_with_jitter() {
        let s = Duration::from_secs;
        // (failures, jitter, pause)
        let cases: &[(u32, f64, Duration)] = &[
            (0, 0.5, s(5)),
            (1, 0.5, s(5)),
            (1, 0.0, s(4)),
            (1, 1.0, s(6)),
            (2, 0.5, s(10)),
            (3, 0.5, s(20)),
            (4, 0.5, s(30)),
            (4, 0.0, s(24)),
            (5, 0.0, s(24)),
            (5, 1.0, s(30)),
            (40, 0.5, s(30)),
            (u32::MAX, 0.5, s(30)),
            (1, f64::NAN, s(5)),
            (1, -1.0, s(4)),
        ];
        for (failures, jitter, want) in cases {
            let got = endpoint_pause(*failures, *jitter);
            assert!(
                got.abs_diff(*want) < Duration::from_millis(1),
                "{failures} failures, jitter {jitter}: {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn answers_and_the_breaker_table() {
        let held = |s: i64| Some(t0() + secs(s));
        let retry = |s: i64| Outcome::Retry { at: t0() + secs(s) };
        // (health before, status, Retry-After, outcome, failures, paused until, change)
        type Case = (
            Health,
            Option<u16>,
            Option<&'static str>,
            Outcome,
            u32,
            Option<DateTime<Utc>>,
            Option<Change>,
        );
        let cases: &[Case] = &[
            // success: healthy
            (Health::default(), Some(200), None, Outcome::Delivered { status: 200 }, 0, None, None),
            (failing(3), Some(204), None, Outcome::Delivered { status: 204 }, 0, None, None),
            // a paused endpoint that answers resumes
            (
                Health { failures: 6, paused_until: held(-1) },
                Some(200),
                None,
                Outcome::Delivered { status: 200 },
                0,
                None,
                Some(Change::Resumed { after_failures: 6 }),
            ),
            // a 4xx: refused for good, but the endpoint is up
            (
                failing(6),
                Some(410),
                None,
                Outcome::Dead {
                    why: Some("HTTP 410: the endpoint refused the event (a 4xx other than 408 and 429 is not retried)".into()),
                },
                0,
                None,
                Some(Change::Resumed { after_failures: 6 }),
            ),
            // a 500 is about this event: its own back-off, no hold
            (Health::default(), Some(500), None, retry(5), 1, None, None),
            (failing(3), Some(500), None, retry(5), 4, None, None),
            // the fifth failure in a row pauses the endpoint (5 s · 2^4, capped)
            (failing(4), Some(500), None, retry(30), 5, held(30), Some(Change::Paused { failures: 5, until: t0() + secs(30) })),
            // paused already: held again, no new change
            (failing(5), Some(500), None, retry(30), 6, held(30), None),
            // no answer, a refused connection, a gateway error: the endpoint is held at once
            (Health::default(), None, None, retry(5), 1, held(5), None),
            (failing(1), Some(503), None, retry(10), 2, held(10), None),
            (failing(2), Some(502), None, retry(20), 3, held(20), None),
            (failing(3), Some(504), None, retry(30), 4, held(30), None),
            // 429: its Retry-After wins when longer than the pause…
            (Health::default(), Some(429), Some("30"), retry(30), 1, held(30), None),
            // …and the pause when longer than the Retry-After
            (failing(3), Some(429), Some("1"), retry(30), 4, held(30), None),
            (Health::default(), Some(429), None, retry(5), 1, held(5), None),
            // a longer hold set by an attempt that ended earlier stands
            (Health { failures: 1, paused_until: held(300) }, None, None, retry(300), 2, held(300), None),
        ];
        for (health, status, retry_after, outcome, failures, paused_until, change) in cases {
            let plan = after_attempt(*health, &attempt(*status, *retry_after));
            let what = format!("{health:?} then {status:?} (Retry-After {retry_after:?})");
            assert_eq!(&plan.outcome, outcome, "{what}");
            assert_eq!(plan.health.failures, *failures, "{what}");
            assert_eq!(plan.health.paused_until, *paused_until, "{what}");
            assert_eq!(plan.change, *change, "{what}");
        }
    }

    #[test]
    fn an_event_failing_on_its_own_backs_off_by_its_own_attempts() {
        for (previous, want) in [(0, 5), (1, 10), (3, 40), (12, 3600)] {
            let mut a = attempt(Some(500), None);
            a.previous_attempts = previous;
            let plan = after_attempt(Health::default(), &a);
            assert_eq!(
                plan.outcome,
                Outcome::Retry {
                    at: t0() + secs(want)
                },
                "{previous} attempts before"
            );
        }
        // but an event of a held endpoint waits for the endpoint only,
        // however often it was tried: it goes as soon as the endpoint is back
        let mut a = attempt(None, None);
        a.previous_attempts = 30;
        let plan = after_attempt(failing(9), &a);
        assert_eq!(
            plan.outcome,
            Outcome::Retry {
                at: t0() + secs(30)
            }
        );
    }

    #[test]
    fn a_failed_event_past_its_maximum_age_is_given_up_and_still_counts() {
        let mut a = attempt(None, None);
        a.queued_at = t0() - chrono::Duration::days(3);
        let plan = after_attempt(failing(2), &a);
        assert_eq!(plan.outcome, Outcome::Dead { why: None });
        assert_eq!(plan.health.failures, 3);
        // a success is a success, however old
        let mut a = attempt(Some(200), None);
        a.queued_at = t0() - chrono::Duration::days(30);
        assert_eq!(
            after_attempt(failing(2), &a).outcome,
            Outcome::Delivered { status: 200 }
        );
    }

    #[test]
    fn a_hung_endpoint_is_tried_once_per_pause_and_resumes_on_its_first_answer() {
        // no answer within the 10 s deadline, each time: the lane probes
        // once, waits, probes once, waits longer…
        let mut health = Health::default();
        let mut now = t0();
        let mut probes = Vec::new();
        let mut changes = Vec::new();
        while probes.len() < 7 {
            match next_step(&health, false, now) {
                Step::Wait { until } => now = until,
                Step::Send { claim, in_flight } => {
                    assert_eq!((claim, in_flight), (1, 1), "one probe at a time");
                    probes.push(now);
                    let mut a = attempt(None, None);
                    a.now = now + secs(10);
                    let plan = after_attempt(health, &a);
                    assert_eq!(
                        plan.outcome,
                        Outcome::Retry {
                            at: plan.health.paused_until.unwrap()
                        }
                    );
                    changes.extend(plan.change);
                    health = plan.health;
                    now = a.now;
                }
            }
        }
        let gaps: Vec<i64> = probes
            .windows(2)
            .map(|w| (w[1] - w[0]).num_seconds())
            .collect();
        // the deadline plus 5, 10, 20, then 30 s at most
        assert_eq!(gaps, [15, 20, 30, 40, 40, 40]);
        assert_eq!(health.state(), State::Paused);
        assert_eq!(
            changes,
            [Change::Paused {
                failures: 5,
                until: probes[4] + secs(40)
            }],
            "paused once, at the fifth failure"
        );
        // it answers: resumed, and the lane widens again
        let mut a = attempt(Some(200), None);
        a.now = health.paused_until.unwrap() + secs(1);
        let plan = after_attempt(health, &a);
        assert_eq!(plan.health, Health::default());
        assert_eq!(plan.change, Some(Change::Resumed { after_failures: 7 }));
        assert_eq!(
            next_step(&plan.health, true, a.now),
            Step::Send {
                claim: CLAIM,
                in_flight: IN_FLIGHT
            }
        );
    }

    #[test]
    fn leases_cover_every_round_of_a_claim() {
        let s = Duration::from_secs;
        for (deadline, claim, in_flight, want) in [
            (s(10), 1, 1, s(70)),
            (s(10), 16, 4, s(100)),
            (s(10), 17, 4, s(110)),
            (s(300), 16, 4, s(1260)),
            (s(10), 0, 0, s(70)),
        ] {
            assert_eq!(lease(deadline, claim, in_flight), want);
        }
    }

    #[test]
    fn idle_lanes_sleep_until_the_hold_ends_or_the_poll() {
        let poll = Duration::from_secs(5);
        let held = |s: i64| Health {
            failures: 1,
            paused_until: Some(t0() + secs(s)),
        };
        assert_eq!(idle_wait(&Health::default(), t0(), poll), poll);
        assert_eq!(idle_wait(&held(2), t0(), poll), Duration::from_secs(2));
        assert_eq!(idle_wait(&held(60), t0(), poll), poll);
        assert_eq!(idle_wait(&held(-5), t0(), poll), poll);
    }

    #[test]
    fn endpoints_gone_from_the_settings_are_found() {
        let pending = vec!["https://a/1".to_string(), "https://b/2".to_string()];
        assert_eq!(
            unknown_endpoints(&pending, &["https://a/1"]),
            ["https://b/2"]
        );
        assert!(unknown_endpoints(&pending, &["https://b/2", "https://a/1"]).is_empty());
        assert!(unknown_endpoints(&[], &["https://a/1"]).is_empty());
    }

    #[test]
    fn states_by_failures() {
        assert_eq!(Health::default().state(), State::Healthy);
        assert_eq!(failing(1).state(), State::Failing);
        assert_eq!(failing(FAILURES_TO_PAUSE - 1).state(), State::Failing);
        assert_eq!(failing(FAILURES_TO_PAUSE).state(), State::Paused);
        assert_eq!(State::Paused.as_str(), "paused");
    }
}
