//! When a webhook delivery is done, tried again, or given up (SPEC.md:
//! retried with exponential back-off, honouring `Retry-After` and 429s; a
//! 4xx other than 408 and 429 is a permanent failure). Redirects are not
//! followed, so a 3xx is permanent too: the admin must configure the final
//! URL. Time and randomness are arguments.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

/// The first retry comes after about this long…
pub const BASE_DELAY: Duration = Duration::from_secs(5);
/// …doubling at each failure up to this.
pub const MAX_DELAY: Duration = Duration::from_secs(60 * 60);
/// An event still undelivered this long after its first attempt is
/// dead-lettered.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3 * 24 * 60 * 60);
/// A `Retry-After: 0` still waits this long, so a server answering 429
/// with no delay cannot make us spin.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What one attempt's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Delivered,
    /// Try again; `after` is the server's `Retry-After`, if it gave one.
    Retry {
        after: Option<Duration>,
    },
    /// Record the failure and do not try again.
    Permanent {
        why: String,
    },
}

/// Classifies an attempt. `status` is `None` for a transport error or a
/// timeout; `retry_after` is the raw `Retry-After` header.
pub fn classify(status: Option<u16>, retry_after: Option<&str>, now: DateTime<Utc>) -> Answer {
    let Some(code) = status else {
        return Answer::Retry { after: None };
    };
    match code {
        200..=299 => Answer::Delivered,
        300..=399 => Answer::Permanent {
            why: format!("HTTP {code}: redirects are not followed (configure the final URL)"),
        },
        408 | 429 => Answer::Retry {
            after: parse_retry_after(retry_after, now),
        },
        400..=499 => Answer::Permanent {
            why: format!(
                "HTTP {code}: the endpoint refused the event (a 4xx other than 408 and 429 is not retried)"
            ),
        },
        // 5xx, and anything a broken server might send.
        _ => Answer::Retry {
            after: parse_retry_after(retry_after, now),
        },
    }
}

/// `Retry-After` as delay-seconds (Discord sends decimals, accepted) or as
/// an HTTP-date (IMF-fixdate, RFC 850 or asctime, RFC 9110 §5.6.7); a date
/// in the past is zero. Anything else is ignored.
pub fn parse_retry_after(value: Option<&str>, now: DateTime<Utc>) -> Option<Duration> {
    let value = value?.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is "a very long time": capped later.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    if let Some((whole, fraction)) = value.split_once('.')
        && !whole.is_empty()
        && !fraction.is_empty()
        && whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        let seconds: f64 = value.parse().ok()?;
        return Duration::try_from_secs_f64(seconds)
            .ok()
            .or(Some(MAX_DELAY));
    }
    let date = DateTime::parse_from_rfc2822(value)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
                .map(|naive| naive.and_utc())
        })?;
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

/// The wait before the next attempt, after `attempt` (0 for the first
/// attempt) failed: `BASE_DELAY · 2^attempt` capped at `MAX_DELAY`, times
/// 0.8–1.2 from `jitter` (0..1, drawn by the caller), never above the cap.
/// A server's `Retry-After` wins over the back-off, within
/// `MIN_RETRY_AFTER..=MAX_DELAY`.
pub fn next_delay(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    if let Some(after) = retry_after {
        return after.clamp(MIN_RETRY_AFTER, MAX_DELAY);
    }
    let base = 2u32
        .checked_pow(attempt)
        .and_then(|factor| BASE_DELAY.checked_mul(factor))
        .map_or(MAX_DELAY, |d| d.min(MAX_DELAY));
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    base.mul_f64(0.8 + 0.4 * jitter).min(MAX_DELAY)
}

/// Does a failed attempt say the whole endpoint is unavailable, not just
/// this event? Then the endpoint's other events wait as well, instead of
/// each being tried in turn: a 429 or a `Retry-After` is about the endpoint
/// (Discord and Slack rate-limit per webhook, and hammering them after a 429
/// would not honour it), and so are a transport failure or a timeout and
/// the gateway statuses 502, 503 and 504. A plain 500 (or 408) may be about
/// this one event, so the endpoint's other tickets still get their turn.
pub fn endpoint_unavailable(status: Option<u16>, retry_after: Option<&str>) -> bool {
    if retry_after.is_some_and(|v| !v.trim().is_empty()) {
        return !matches!(status, Some(200..=299));
    }
    matches!(status, None | Some(429 | 502 | 503 | 504))
}

/// Is an event whose first attempt was at `first_attempt_at` too old to
/// try again? (Dead at exactly `max_age`.)
pub fn is_dead(first_attempt_at: DateTime<Utc>, now: DateTime<Utc>, max_age: Duration) -> bool {
    (now - first_attempt_at)
        .to_std()
        .is_ok_and(|age| age >= max_age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn endpoint_wide_failures_are_told_from_one_events_failures() {
        let cases: &[(Option<u16>, Option<&str>, bool)] = &[
            (None, None, true),
            (Some(429), None, true),
            (Some(429), Some("3"), true),
            (Some(502), None, true),
            (Some(503), None, true),
            (Some(504), None, true),
            (Some(500), Some("10"), true),
            (Some(408), Some("1"), true),
            (Some(500), None, false),
            (Some(501), None, false),
            (Some(408), None, false),
            (Some(500), Some("  "), false),
            (Some(200), Some("5"), false),
            (Some(404), None, false),
        ];
        for (status, retry_after, expected) in cases {
            assert_eq!(
                endpoint_unavailable(*status, *retry_after),
                *expected,
                "status {status:?}, Retry-After {retry_after:?}"
            );
        }
    }

    #[test]
    fn status_codes_are_classified_on_every_boundary() {
        use Answer::*;
        let retry = Retry { after: None };
        let cases: &[(Option<u16>, &str)] = &[
            (None, "retry"),
            (Some(100), "retry"),
            (Some(199), "retry"),
            (Some(200), "delivered"),
            (Some(202), "delivered"),
            (Some(204), "delivered"),
            (Some(299), "delivered"),
            (Some(300), "permanent"),
            (Some(301), "permanent"),
            (Some(302), "permanent"),
            (Some(307), "permanent"),
            (Some(308), "permanent"),
            (Some(399), "permanent"),
            (Some(400), "permanent"),
            (Some(401), "permanent"),
            (Some(403), "permanent"),
            (Some(404), "permanent"),
            (Some(407), "permanent"),
            (Some(408), "retry"),
            (Some(409), "permanent"),
            (Some(410), "permanent"),
            (Some(413), "permanent"),
            (Some(428), "permanent"),
            (Some(429), "retry"),
            (Some(430), "permanent"),
            (Some(499), "permanent"),
            (Some(500), "retry"),
            (Some(502), "retry"),
            (Some(503), "retry"),
            (Some(504), "retry"),
            (Some(599), "retry"),
            (Some(600), "retry"),
        ];
        for (status, expected) in cases {
            let got = classify(*status, None, now());
            let kind = match &got {
                Delivered => "delivered",
                Retry { .. } => "retry",
                Permanent { .. } => "permanent",
            };
            assert_eq!(kind, *expected, "status {status:?} gave {got:?}");
            if kind == "retry" {
                assert_eq!(got, retry, "status {status:?}");
            }
            if let Permanent { why } = &got {
                let code = status.unwrap().to_string();
                assert!(why.contains(&code), "status {status:?}: {why}");
                if (300..400).contains(&status.unwrap()) {
                    assert!(why.contains("redirects are not followed"), "{why}");
                }
            }
        }
    }

    #[test]
    fn retry_after_is_kept_on_retries_and_ignored_otherwise() {
        let cases: &[(Option<u16>, Answer)] = &[
            (
                Some(429),
                Answer::Retry {
                    after: Some(secs(7)),
                },
            ),
            (
                Some(503),
                Answer::Retry {
                    after: Some(secs(7)),
                },
            ),
            (
                Some(408),
                Answer::Retry {
                    after: Some(secs(7)),
                },
            ),
            (Some(200), Answer::Delivered),
        ];
        for (status, expected) in cases {
            assert_eq!(
                &classify(*status, Some("7"), now()),
                expected,
                "status {status:?}"
            );
        }
        assert!(matches!(
            classify(Some(404), Some("7"), now()),
            Answer::Permanent { .. }
        ));
    }

    #[test]
    fn retry_after_is_parsed_as_seconds_or_http_date() {
        let cases: &[(Option<&str>, Option<Duration>)] = &[
            (None, None),
            (Some(""), None),
            (Some("   "), None),
            (Some("0"), Some(secs(0))),
            (Some("1"), Some(secs(1))),
            (Some(" 120 "), Some(secs(120))),
            (Some("99999999999999999999999"), Some(secs(u64::MAX))),
            (Some("1.5"), Some(Duration::from_millis(1500))),
            (Some("0.25"), Some(Duration::from_millis(250))),
            (Some("-5"), None),
            (Some("1."), None),
            (Some(".5"), None),
            (Some("1e3"), None),
            (Some("soon"), None),
            // IMF-fixdate, 90 s after now().
            (Some("Sun, 01 Mar 2026 09:31:30 GMT"), Some(secs(90))),
            // Exactly now, and in the past: no wait.
            (Some("Sun, 01 Mar 2026 09:30:00 GMT"), Some(secs(0))),
            (Some("Sat, 28 Feb 2026 09:30:00 GMT"), Some(secs(0))),
            // RFC 850 and asctime, the obsolete forms receivers must accept.
            (Some("Sunday, 01-Mar-26 09:31:00 GMT"), Some(secs(60))),
            (Some("Sun Mar  1 09:40:00 2026"), Some(secs(600))),
            (Some("Sun, 01 Mar 2026 25:00:00 GMT"), None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_retry_after(*input, now()),
                *expected,
                "Retry-After {input:?}"
            );
        }
    }

    #[test]
    fn back_off_doubles_with_jitter_and_stops_at_the_cap() {
        // (attempt, jitter, expected)
        let cases: &[(u32, f64, Duration)] = &[
            (0, 0.5, secs(5)),
            (0, 0.0, secs(4)),
            (0, 1.0, secs(6)),
            (1, 0.5, secs(10)),
            (2, 0.5, secs(20)),
            (3, 0.0, secs(32)),
            (3, 1.0, secs(48)),
            (9, 0.5, secs(2560)),
            // 5 · 2^10 = 5120 s: capped at 3600 before the jitter…
            (10, 0.5, secs(3600)),
            (10, 0.0, secs(2880)),
            // …and after it.
            (10, 1.0, secs(3600)),
            (9, 1.0, secs(3072)),
            (31, 0.5, secs(3600)),
            (32, 0.5, secs(3600)),
            (u32::MAX, 0.0, secs(2880)),
            // Out-of-range jitter is clamped; NaN means the middle.
            (0, -3.0, secs(4)),
            (0, 7.0, secs(6)),
            (0, f64::NAN, secs(5)),
            (0, f64::INFINITY, secs(5)),
        ];
        for (attempt, jitter, expected) in cases {
            let got = next_delay(*attempt, None, *jitter);
            let diff = got.abs_diff(*expected);
            assert!(
                diff < Duration::from_millis(1),
                "attempt {attempt}, jitter {jitter}: {got:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn retry_after_wins_within_bounds() {
        let cases: &[(Option<Duration>, u32, Duration)] = &[
            (Some(secs(30)), 0, secs(30)),
            (Some(secs(30)), 12, secs(30)),
            (Some(secs(0)), 0, MIN_RETRY_AFTER),
            (Some(Duration::from_millis(400)), 0, MIN_RETRY_AFTER),
            (Some(secs(3600)), 0, secs(3600)),
            (Some(secs(3601)), 0, MAX_DELAY),
            (Some(secs(u64::MAX)), 0, MAX_DELAY),
        ];
        for (after, attempt, expected) in cases {
            for jitter in [0.0, 0.5, 1.0] {
                assert_eq!(
                    next_delay(*attempt, *after, jitter),
                    *expected,
                    "Retry-After {after:?}, attempt {attempt}, jitter {jitter}"
                );
            }
        }
    }

    #[test]
    fn events_die_at_their_maximum_age() {
        let first = now();
        let day = chrono::Duration::days(1);
        let cases: &[(chrono::Duration, Duration, bool)] = &[
            (chrono::Duration::zero(), DEFAULT_MAX_AGE, false),
            (
                day * 3 - chrono::Duration::seconds(1),
                DEFAULT_MAX_AGE,
                false,
            ),
            (day * 3, DEFAULT_MAX_AGE, true),
            (
                day * 3 + chrono::Duration::seconds(1),
                DEFAULT_MAX_AGE,
                true,
            ),
            (day * 30, DEFAULT_MAX_AGE, true),
            // A clock that went backwards does not kill an event.
            (-day, DEFAULT_MAX_AGE, false),
            (chrono::Duration::seconds(59), secs(60), false),
            (chrono::Duration::seconds(60), secs(60), true),
            (chrono::Duration::zero(), Duration::ZERO, true),
        ];
        for (age, max_age, expected) in cases {
            assert_eq!(
                is_dead(first, first + *age, *max_age),
                *expected,
                "age {age}, max {max_age:?}"
            );
        }
        assert_eq!(DEFAULT_MAX_AGE, secs(3 * 24 * 3600));
    }
}
