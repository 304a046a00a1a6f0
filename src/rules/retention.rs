//! Retention (SPEC.md `[retention]`, issue 24): what of the stored
//! personal data is due to go at a given instant, and how a large purge
//! shares the database with ingest. Pure: the worker reads the clock and
//! the rows, asks these functions, and deletes.
//!
//! Windows, counted from the instant each thing's purpose ended:
//! - a ticket closed longer than `closed_tickets_days` goes whole
//!   (messages, raw mail, files, participants, events, queued mail);
//! - the raw copies of mail in a ticket closed longer than `raw_mail_days`
//!   go (the decoded text, the files and their verdicts stay);
//! - the body of a sent mail, [`SENT_MAIL_BODY_DAYS`] after it was handed
//!   to the relay (its row stays: bounces find the ticket by Message-ID);
//! - the payload of a delivered webhook, [`DELIVERED_PAYLOAD_DAYS`] after
//!   delivery (its row stays for `stats`);
//! - an auto-reply record, [`AUTO_REPLY_RECORD_HOURS`] after the reply (the
//!   limit it serves counts the last hour).
//!
//! `0` days in `[retention]` keeps forever; the last three windows always
//! apply (nothing reads those bytes once they are past).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

use crate::settings::RetentionSettings;

/// Days a sent mail's body is kept after it was sent.
pub const SENT_MAIL_BODY_DAYS: i64 = 7;
/// Days a delivered webhook's payload is kept after delivery.
pub const DELIVERED_PAYLOAD_DAYS: i64 = 7;
/// Hours an auto-reply record is kept (the limit looks one hour back).
pub const AUTO_REPLY_RECORD_HOURS: i64 = 24;
/// Tickets removed (or rows cleared) per transaction.
pub const BATCH: i64 = 100;

/// The instants before which each kind of data is due, for one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Tickets closed before this go whole; `None`: kept forever.
    pub tickets_closed_before: Option<DateTime<Utc>>,
    /// Raw mail of tickets closed before this goes; `None`: kept.
    pub raw_mail_closed_before: Option<DateTime<Utc>>,
    /// Bodies of mail sent before this go.
    pub mail_sent_before: DateTime<Utc>,
    /// Payloads of webhooks delivered before this go.
    pub webhooks_delivered_before: DateTime<Utc>,
    /// Auto-reply records older than this go.
    pub auto_replies_before: DateTime<Utc>,
}

/// The cut-offs at `now` under these settings.
pub fn cutoffs(r: &RetentionSettings, now: DateTime<Utc>) -> Cutoffs {
    let days = |d: u32| (d > 0).then(|| now - Duration::days(i64::from(d)));
    Cutoffs {
        tickets_closed_before: days(r.closed_tickets_days),
        raw_mail_closed_before: days(r.raw_mail_days),
        mail_sent_before: now - Duration::days(SENT_MAIL_BODY_DAYS),
        webhooks_delivered_before: now - Duration::days(DELIVERED_PAYLOAD_DAYS),
        auto_replies_before: now - Duration::hours(AUTO_REPLY_RECORD_HOURS),
    }
}

/// What becomes of one ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketFate {
    Keep,
    /// Its raw mail goes; the rest stays.
    DropRawMail,
    /// It goes with everything it holds.
    Remove,
}

/// The fate of a ticket that is `closed` (or not) since `closed_at`. An
/// open ticket is never touched, whatever its age; a closed one goes
/// strictly after its window (closed exactly at the cut-off stays).
pub fn ticket_fate(closed: bool, closed_at: Option<DateTime<Utc>>, c: &Cutoffs) -> TicketFate {
    let Some(at) = closed_at.filter(|_| closed) else {
        return TicketFate::Keep;
    };
    if c.tickets_closed_before.is_some_and(|b| at < b) {
        TicketFate::Remove
    } else if c.raw_mail_closed_before.is_some_and(|b| at < b) {
        TicketFate::DropRawMail
    } else {
        TicketFate::Keep
    }
}

/// How long the purge rests after a batch that took `took`, so that
/// ingest, which shares the database (SQLite has one writer, and Guichet
/// one connection to it) and the machine, keeps at least 80 % of its
/// pace: the purge works at most a tenth of the time (a fifth was not
/// enough on a loaded 2-CPU machine: the purge's deletions also cost
/// ingest page-cache misses; see README "Benchmarks"). At least 5 ms (let
/// the others in), at most 5 s (a slow disk must not stall the purge for
/// good).
pub fn rest_after_batch(took: StdDuration) -> StdDuration {
    (took * 9).clamp(StdDuration::from_millis(5), StdDuration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn cutoffs_follow_the_settings_and_zero_keeps_forever() {
        let now = at("2026-06-30T12:00:00Z");
        let cases: &[(u32, u32, Option<&str>, Option<&str>)] = &[
            (0, 0, None, None),
            (365, 0, Some("2025-06-30T12:00:00Z"), None),
            (0, 30, None, Some("2026-05-31T12:00:00Z")),
            (
                365,
                30,
                Some("2025-06-30T12:00:00Z"),
                Some("2026-05-31T12:00:00Z"),
            ),
        ];
        for &(t, r, tb, rb) in cases {
            let c = cutoffs(
                &RetentionSettings {
                    closed_tickets_days: t,
                    raw_mail_days: r,
                },
                now,
            );
            assert_eq!(c.tickets_closed_before, tb.map(at), "{t} {r}");
            assert_eq!(c.raw_mail_closed_before, rb.map(at), "{t} {r}");
            assert_eq!(c.mail_sent_before, at("2026-06-23T12:00:00Z"));
            assert_eq!(c.webhooks_delivered_before, at("2026-06-23T12:00:00Z"));
            assert_eq!(c.auto_replies_before, at("2026-06-29T12:00:00Z"));
        }
    }

    #[test]
    fn ticket_fates() {
        let now = at("2026-06-30T12:00:00Z");
        let both = cutoffs(
            &RetentionSettings {
                closed_tickets_days: 365,
                raw_mail_days: 30,
            },
            now,
        );
        let raw_only = cutoffs(
            &RetentionSettings {
                closed_tickets_days: 0,
                raw_mail_days: 30,
            },
            now,
        );
        let keep = cutoffs(&RetentionSettings::default(), now);
        use TicketFate::*;
        let cases: &[(&str, bool, Option<&str>, &Cutoffs, TicketFate)] = &[
            ("open, never closed", false, None, &both, Keep),
            // reopened: closed_at is history, the ticket is live
            (
                "open, closed long ago",
                false,
                Some("2020-01-01T00:00:00Z"),
                &both,
                Keep,
            ),
            (
                "closed yesterday",
                true,
                Some("2026-06-29T12:00:00Z"),
                &both,
                Keep,
            ),
            (
                "closed at the raw cut-off",
                true,
                Some("2026-05-31T12:00:00Z"),
                &both,
                Keep,
            ),
            (
                "closed just before raw",
                true,
                Some("2026-05-31T11:59:59Z"),
                &both,
                DropRawMail,
            ),
            (
                "closed at the ticket cut-off",
                true,
                Some("2025-06-30T12:00:00Z"),
                &both,
                DropRawMail,
            ),
            (
                "closed before the ticket cut-off",
                true,
                Some("2025-06-30T11:59:59Z"),
                &both,
                Remove,
            ),
            (
                "closed years ago, raw only",
                true,
                Some("2020-01-01T00:00:00Z"),
                &raw_only,
                DropRawMail,
            ),
            (
                "closed years ago, keep",
                true,
                Some("2020-01-01T00:00:00Z"),
                &keep,
                Keep,
            ),
            ("closed without a date", true, None, &both, Keep),
        ];
        for &(name, closed, closed_at, c, want) in cases {
            assert_eq!(ticket_fate(closed, closed_at.map(at), c), want, "{name}");
        }
    }

    #[test]
    fn the_purge_rests_nine_times_its_batch() {
        let ms = StdDuration::from_millis;
        let cases = [
            (0, 5),
            (1, 9),
            (2, 18),
            (50, 450),
            (400, 3600),
            (600, 5000),
            (10_000, 5000),
        ];
        for (took, rest) in cases {
            assert_eq!(rest_after_batch(ms(took)), ms(rest), "{took} ms");
        }
    }
}
