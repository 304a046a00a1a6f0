//! When a ticket closes by itself and what a reply to a closed ticket does
//! (SPEC.md "Lifecycle"), as pure functions of the ticket's clock, the
//! current settings and `now`.
//!
//! Nothing here is stored: the deadlines are recomputed from the settings
//! in force at each call. That is what makes a settings change apply to
//! tickets already open or closed — lowering `auto_close_days` closes more
//! tickets at the next sweep, and changing `reopen_days` moves the reopen
//! deadline of tickets closed before the change.
//!
//! Time: "whole days" are whole 24-hour spans counted from the instant of
//! the relevant event (last activity, closing), in UTC. There is no
//! calendar arithmetic, so month ends, leap days and DST changes of the
//! customer's zone do not move a deadline.

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::TicketStatus;
use crate::settings::{AutoCloseScope, ReopenWindow};

/// Who wrote a ticket's last counted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The customer (or a participant on their side).
    Customer,
    /// An agent, through the gateway.
    Agent,
}

/// What the lifecycle rules need to know about a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketClock {
    pub status: TicketStatus,
    /// The last message that [`counts_as_activity`], in or out. For a ticket
    /// with no such message yet, its creation.
    pub last_activity_at: DateTime<Utc>,
    /// The author of that message ([`last_message_party`]).
    pub last_message_from: Party,
    /// The last closing, when the ticket is closed.
    pub closed_at: Option<DateTime<Utc>>,
}

/// The kinds of message a ticket's history holds, as far as the lifecycle
/// cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A person's mail to the ticket (the customer or a Cc'd participant).
    Inbound,
    /// An agent's reply, relayed to the customer.
    Outbound,
    /// An agent's internal note: never sent to the customer.
    Note,
    /// An automatic reply received (out-of-office, vacation notice).
    AutoReplyIn,
    /// A delivery status notification about one of our mails.
    Bounce,
    /// Guichet's own automatic mail to the customer: acknowledgement of a new
    /// ticket, closing notice, reopen notice, new-linked-ticket notice,
    /// attachment refusal notice.
    SystemOut,
}

/// Does this message reset the inactivity clock?
///
/// - `Inbound`, `Outbound`: yes, a conversation is going on.
/// - `Note`: no. The customer never sees it; an agent thinking aloud does
///   not mean the ticket is waiting on anyone (SPEC: activity is a message
///   in or out).
/// - `AutoReplyIn`, `Bounce`: no. A robot should not keep a ticket alive:
///   a customer's two-week out-of-office would otherwise postpone the close
///   forever, and a bouncing address would keep a dead ticket open.
/// - `SystemOut`: no. Our own acknowledgement is not an answer; if it
///   counted, a ticket nobody answered would look recently active.
pub fn counts_as_activity(kind: MessageKind) -> bool {
    match kind {
        MessageKind::Inbound | MessageKind::Outbound => true,
        MessageKind::Note
        | MessageKind::AutoReplyIn
        | MessageKind::Bounce
        | MessageKind::SystemOut => false,
    }
}

/// Whose turn a message makes it: `Some(Agent)` after an agent's reply
/// (the ticket awaits the customer), `Some(Customer)` after a customer's
/// mail, `None` for messages that change nothing ([`counts_as_activity`] is
/// false for exactly those). In particular Guichet's own acknowledgement
/// does not make a ticket "awaiting customer", so it is not auto-closed
/// before an agent ever answered.
pub fn last_message_party(kind: MessageKind) -> Option<Party> {
    match kind {
        MessageKind::Inbound => Some(Party::Customer),
        MessageKind::Outbound => Some(Party::Agent),
        MessageKind::Note
        | MessageKind::AutoReplyIn
        | MessageKind::Bounce
        | MessageKind::SystemOut => None,
    }
}

/// The instant at or before which a ticket's last activity must lie for it
/// to be due for auto-close now: `now - auto_close_days × 24 h`. `None` when
/// auto-close is disabled (`0`) or the subtraction leaves chrono's range (no
/// ticket can be that old). The sweeper can select
/// `last_activity_at <= cutoff` and then confirm with [`auto_close_due`].
pub fn auto_close_cutoff(auto_close_days: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if auto_close_days == 0 {
        return None;
    }
    let span = TimeDelta::try_days(i64::from(auto_close_days))?;
    now.checked_sub_signed(span)
}

/// Is this ticket due to be closed for inactivity at `now`?
///
/// Due when all hold:
/// - it is not closed (`closed` and `resolved` are both closed);
/// - `auto_close_days` is not `0`;
/// - it is in scope: with `awaiting_customer`, its last message came from an
///   agent (SPEC's definition of "awaiting the customer", so `status` is
///   only read for closedness); with `any`, every open ticket;
/// - `now >= last_activity_at + auto_close_days × 24 h`: exactly N days
///   after the last activity is due, one second less is not.
pub fn auto_close_due(
    t: &TicketClock,
    auto_close_days: u32,
    scope: AutoCloseScope,
    now: DateTime<Utc>,
) -> bool {
    if t.status.is_closed() {
        return false;
    }
    let in_scope = match scope {
        AutoCloseScope::AwaitingCustomer => t.last_message_from == Party::Agent,
        AutoCloseScope::Any => true,
    };
    if !in_scope {
        return false;
    }
    match auto_close_cutoff(auto_close_days, now) {
        Some(cutoff) => t.last_activity_at <= cutoff,
        None => false,
    }
}

/// Until when a customer's reply reopens a closed ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReopenDeadline {
    /// A reply never reopens (`reopen_days = 0`): it opens a linked ticket.
    Never,
    /// A reply reopens up to and including this instant.
    Until(DateTime<Utc>),
    /// A reply always reopens (`reopen_days = -1`).
    Unlimited,
}

/// The reopen deadline of a ticket closed at `closed_at`, under the window
/// in force now: `closed_at + reopen_days × 24 h`. Used both for the closing
/// notice ("reply before … to reopen") and for the decision on a reply.
/// `Days(0)` means `Never`, like `reopen_days = 0`. A deadline past chrono's
/// range (a window of millions of years) is `Unlimited`.
pub fn reopen_deadline(closed_at: DateTime<Utc>, window: ReopenWindow) -> ReopenDeadline {
    match window {
        ReopenWindow::Never | ReopenWindow::Days(0) => ReopenDeadline::Never,
        ReopenWindow::Unlimited => ReopenDeadline::Unlimited,
        ReopenWindow::Days(days) => TimeDelta::try_days(i64::from(days))
            .and_then(|span| closed_at.checked_add_signed(span))
            .map_or(ReopenDeadline::Unlimited, ReopenDeadline::Until),
    }
}

/// What a customer's message that threads to a closed ticket does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyToClosed {
    /// Reopen the ticket, append the message, tell the customer
    /// (`ticket.reopened`).
    Reopen,
    /// Open a new ticket linked to the closed one and answer the customer
    /// with the new number and `why`.
    OpenLinkedTicket { why: LinkReason },
}

/// Why a reply opened a new ticket instead of reopening the old one; the
/// customer's answer says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkReason {
    /// `reopen_days = 0`: closed tickets are never reopened.
    ReopenDisabled,
    /// The reply came after the reopen deadline.
    WindowExpired { deadline: DateTime<Utc> },
}

/// The decision on a customer's reply to a ticket closed at `closed_at`,
/// received at `now`: reopen when `now` is at or before the deadline (the
/// boundary instant itself reopens), else a linked ticket. A reply dated
/// before the closing (clocks disagree) is within any window.
pub fn customer_reply_to_closed(
    closed_at: DateTime<Utc>,
    window: ReopenWindow,
    now: DateTime<Utc>,
) -> ReplyToClosed {
    match reopen_deadline(closed_at, window) {
        ReopenDeadline::Never => ReplyToClosed::OpenLinkedTicket {
            why: LinkReason::ReopenDisabled,
        },
        ReopenDeadline::Unlimited => ReplyToClosed::Reopen,
        ReopenDeadline::Until(deadline) if now <= deadline => ReplyToClosed::Reopen,
        ReopenDeadline::Until(deadline) => ReplyToClosed::OpenLinkedTicket {
            why: LinkReason::WindowExpired { deadline },
        },
    }
}

/// Does an agent's mail to a closed ticket reopen it? Only when it carries
/// `#reopen`, whatever `reopen_days` says: the window is the customer's
/// right, and an agent adding a last word ("glad it works") must not
/// revive a ticket. The mail is relayed to the customer either way.
pub fn agent_mail_to_closed(reopen_command: bool) -> bool {
    reopen_command
}

/// Why mail that arrived at `received` must cause no automatic mail and
/// no webhook event at `now`: it is older than `old_mail_days` (history
/// met on a first start or after a server move). `0`: no limit.
pub fn too_old_for_automatic_mail(
    received: DateTime<Utc>,
    old_mail_days: u32,
    now: DateTime<Utc>,
) -> Option<String> {
    let limit = TimeDelta::try_days(i64::from(old_mail_days))?;
    (old_mail_days > 0 && now - received > limit).then(|| {
        format!(
            "received {}, more than {old_mail_days} days ago (helpdesk.old_mail_days)",
            received.format("%Y-%m-%d")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    const DAY: i64 = 86_400;

    fn clock(status: TicketStatus, last: DateTime<Utc>, from: Party) -> TicketClock {
        TicketClock {
            status,
            last_activity_at: last,
            last_message_from: from,
            closed_at: status.is_closed().then_some(last),
        }
    }

    #[test]
    fn auto_close_boundaries() {
        use AutoCloseScope::{Any, AwaitingCustomer as Awaiting};
        use Party::{Agent, Customer};
        use TicketStatus::{AwaitingCustomer, Closed, Open, Resolved};
        let last = at(2024, 3, 10, 14, 30, 0);
        // (status, last message from, days, scope, now - last, due?)
        let cases: &[(TicketStatus, Party, u32, AutoCloseScope, TimeDelta, bool)] = &[
            // exactly N days → due; one second less → not; more → due
            (AwaitingCustomer, Agent, 7, Awaiting, secs(7 * DAY), true),
            (
                AwaitingCustomer,
                Agent,
                7,
                Awaiting,
                secs(7 * DAY - 1),
                false,
            ),
            (
                AwaitingCustomer,
                Agent,
                7,
                Awaiting,
                secs(7 * DAY + 1),
                true,
            ),
            (AwaitingCustomer, Agent, 7, Awaiting, secs(0), false),
            (AwaitingCustomer, Agent, 1, Awaiting, secs(DAY), true),
            (AwaitingCustomer, Agent, 1, Awaiting, secs(DAY - 1), false),
            // 0 disables, however old the activity
            (AwaitingCustomer, Agent, 0, Awaiting, secs(0), false),
            (AwaitingCustomer, Agent, 0, Any, secs(3650 * DAY), false),
            // scope: awaiting_customer skips tickets waiting on an agent…
            (Open, Customer, 7, Awaiting, secs(30 * DAY), false),
            // …any closes them, with the same boundary
            (Open, Customer, 7, Any, secs(7 * DAY), true),
            (Open, Customer, 7, Any, secs(7 * DAY - 1), false),
            (AwaitingCustomer, Agent, 7, Any, secs(7 * DAY), true),
            // the last message decides "awaiting customer", not a stale status
            (Open, Agent, 7, Awaiting, secs(7 * DAY), true),
            // closed or resolved is never due, in either scope
            (Closed, Agent, 7, Awaiting, secs(30 * DAY), false),
            (Closed, Customer, 7, Any, secs(30 * DAY), false),
            (Resolved, Agent, 7, Awaiting, secs(30 * DAY), false),
            (Resolved, Customer, 1, Any, secs(30 * DAY), false),
            // the largest setting does not overflow
            (
                AwaitingCustomer,
                Agent,
                u32::MAX,
                Any,
                secs(3650 * DAY),
                false,
            ),
        ];
        for (i, &(status, from, days, scope, elapsed, want)) in cases.iter().enumerate() {
            let t = clock(status, last, from);
            let got = auto_close_due(&t, days, scope, last + elapsed);
            assert_eq!(
                got,
                want,
                "case {i}: status={status} from={from:?} days={days} scope={scope:?} \
                 elapsed={}s",
                elapsed.num_seconds()
            );
        }
    }

    #[test]
    fn auto_close_counts_24h_spans_across_month_end_and_leap_day() {
        // Last activity 2024-02-26 18:00 UTC, 7 days: due 2024-03-04 18:00
        // (February 2024 has 29 days), whatever the calendar says.
        let t = clock(
            TicketStatus::AwaitingCustomer,
            at(2024, 2, 26, 18, 0, 0),
            Party::Agent,
        );
        let s = AutoCloseScope::AwaitingCustomer;
        assert!(!auto_close_due(&t, 7, s, at(2024, 3, 4, 17, 59, 59)));
        assert!(auto_close_due(&t, 7, s, at(2024, 3, 4, 18, 0, 0)));
        // 31-day month end: 2024-01-28 + 5 d = 2024-02-02, same hour.
        let t = clock(
            TicketStatus::AwaitingCustomer,
            at(2024, 1, 28, 0, 0, 1),
            Party::Agent,
        );
        assert!(!auto_close_due(&t, 5, s, at(2024, 2, 2, 0, 0, 0)));
        assert!(auto_close_due(&t, 5, s, at(2024, 2, 2, 0, 0, 1)));
        // Europe's DST change (2024-03-31 01:00 UTC) does not move it either.
        let t = clock(
            TicketStatus::AwaitingCustomer,
            at(2024, 3, 30, 12, 0, 0),
            Party::Agent,
        );
        assert!(!auto_close_due(&t, 1, s, at(2024, 3, 31, 11, 59, 59)));
        assert!(auto_close_due(&t, 1, s, at(2024, 3, 31, 12, 0, 0)));
    }

    #[test]
    fn lowering_auto_close_days_closes_more_at_next_sweep() {
        let last = at(2024, 5, 1, 9, 0, 0);
        let t = clock(TicketStatus::AwaitingCustomer, last, Party::Agent);
        let sweep = last + secs(5 * DAY);
        let s = AutoCloseScope::AwaitingCustomer;
        assert!(!auto_close_due(&t, 7, s, sweep), "7 days: not yet");
        assert!(auto_close_due(&t, 5, s, sweep), "lowered to 5: due now");
        assert!(auto_close_due(&t, 3, s, sweep), "lowered to 3: due now");
        assert!(!auto_close_due(&t, 0, s, sweep), "disabled: never");
    }

    #[test]
    fn cutoff_matches_due() {
        let now = at(2024, 3, 1, 0, 0, 0);
        assert_eq!(auto_close_cutoff(0, now), None);
        assert_eq!(auto_close_cutoff(7, now), Some(at(2024, 2, 23, 0, 0, 0)));
        assert_eq!(auto_close_cutoff(u32::MAX, now), None);
    }

    #[test]
    fn reopen_window_boundaries() {
        use ReopenWindow::{Days, Never, Unlimited};
        let closed = at(2024, 3, 28, 16, 45, 0);
        let linked_disabled = ReplyToClosed::OpenLinkedTicket {
            why: LinkReason::ReopenDisabled,
        };
        let expired = |days: i64| ReplyToClosed::OpenLinkedTicket {
            why: LinkReason::WindowExpired {
                deadline: closed + secs(days * DAY),
            },
        };
        // (window, reply at closed + offset, expected)
        let cases: Vec<(ReopenWindow, TimeDelta, ReplyToClosed)> = vec![
            // -1: always, even years later
            (Unlimited, secs(0), ReplyToClosed::Reopen),
            (Unlimited, secs(3650 * DAY), ReplyToClosed::Reopen),
            // 0: never, even one second later
            (Never, secs(0), linked_disabled),
            (Never, secs(1), linked_disabled),
            (Days(0), secs(1), linked_disabled),
            // 1 day: the boundary instant reopens, one second after does not
            (Days(1), secs(1), ReplyToClosed::Reopen),
            (Days(1), secs(DAY - 1), ReplyToClosed::Reopen),
            (Days(1), secs(DAY), ReplyToClosed::Reopen),
            (Days(1), secs(DAY + 1), expired(1)),
            // 7 days, across the month end
            (Days(7), secs(0), ReplyToClosed::Reopen),
            (Days(7), secs(7 * DAY), ReplyToClosed::Reopen),
            (Days(7), secs(7 * DAY + 1), expired(7)),
            (Days(7), secs(30 * DAY), expired(7)),
            // a reply stamped before the closing (skewed clock) is inside
            (Days(7), secs(-60), ReplyToClosed::Reopen),
            // a window past chrono's range behaves as unlimited
            (Days(u32::MAX), secs(3650 * DAY), ReplyToClosed::Reopen),
        ];
        for (i, (window, offset, want)) in cases.into_iter().enumerate() {
            let got = customer_reply_to_closed(closed, window, closed + offset);
            assert_eq!(
                got,
                want,
                "case {i}: window={window:?} reply at closed+{}s",
                offset.num_seconds()
            );
        }
    }

    #[test]
    fn reopen_deadline_for_the_closing_notice() {
        let closed = at(2024, 12, 28, 10, 0, 0);
        let cases = [
            (ReopenWindow::Never, ReopenDeadline::Never),
            (ReopenWindow::Days(0), ReopenDeadline::Never),
            (ReopenWindow::Unlimited, ReopenDeadline::Unlimited),
            (
                ReopenWindow::Days(1),
                ReopenDeadline::Until(at(2024, 12, 29, 10, 0, 0)),
            ),
            // across the year end
            (
                ReopenWindow::Days(7),
                ReopenDeadline::Until(at(2025, 1, 4, 10, 0, 0)),
            ),
            (ReopenWindow::Days(u32::MAX), ReopenDeadline::Unlimited),
        ];
        for (window, want) in cases {
            assert_eq!(reopen_deadline(closed, window), want, "window={window:?}");
        }
    }

    #[test]
    fn settings_change_applies_to_tickets_closed_before() {
        // Closed on 1 March under reopen_days = 7; the customer replies on
        // 11 March, after the admin changed the setting.
        let closed = at(2024, 3, 1, 8, 0, 0);
        let reply = at(2024, 3, 11, 8, 0, 0);
        assert!(matches!(
            customer_reply_to_closed(closed, ReopenWindow::Days(7), reply),
            ReplyToClosed::OpenLinkedTicket {
                why: LinkReason::WindowExpired { .. }
            }
        ));
        // widened to 14: the same ticket now reopens
        assert_eq!(
            customer_reply_to_closed(closed, ReopenWindow::Days(14), reply),
            ReplyToClosed::Reopen
        );
        // widened to unlimited: reopens
        assert_eq!(
            customer_reply_to_closed(closed, ReopenWindow::Unlimited, reply),
            ReplyToClosed::Reopen
        );
        // narrowed to 0: even a reply the next minute opens a linked ticket
        assert_eq!(
            customer_reply_to_closed(closed, ReopenWindow::Never, closed + secs(60)),
            ReplyToClosed::OpenLinkedTicket {
                why: LinkReason::ReopenDisabled
            }
        );
        // narrowed from 14 to 3: a reply on day 5 no longer reopens, and the
        // deadline given is the new one
        assert_eq!(
            customer_reply_to_closed(closed, ReopenWindow::Days(3), closed + secs(5 * DAY)),
            ReplyToClosed::OpenLinkedTicket {
                why: LinkReason::WindowExpired {
                    deadline: at(2024, 3, 4, 8, 0, 0)
                }
            }
        );
    }

    #[test]
    fn agents_reopen_only_with_the_command() {
        assert!(agent_mail_to_closed(true));
        assert!(!agent_mail_to_closed(false));
    }

    #[test]
    fn what_counts_as_activity() {
        use MessageKind::*;
        let cases = [
            (Inbound, true, Some(Party::Customer)),
            (Outbound, true, Some(Party::Agent)),
            (Note, false, None),
            (AutoReplyIn, false, None),
            (Bounce, false, None),
            (SystemOut, false, None),
        ];
        for (kind, activity, party) in cases {
            assert_eq!(counts_as_activity(kind), activity, "{kind:?}");
            assert_eq!(last_message_party(kind), party, "{kind:?}");
        }
    }
}

#[cfg(test)]
mod old_mail_tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn mail_older_than_the_limit_is_quiet() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
        let day = TimeDelta::days(1);
        // (received, days, quiet?)
        for (received, days, quiet) in [
            (now - day * 3, 3, false),                        // exactly the limit
            (now - day * 3 - TimeDelta::seconds(1), 3, true), // just past it
            (now - day * 700, 3, true),                       // years of history
            (now - day * 700, 0, false),                      // 0: no limit
            (now + day, 3, false),                            // a Date in the future
        ] {
            assert_eq!(
                too_old_for_automatic_mail(received, days, now).is_some(),
                quiet,
                "{received} with {days} days"
            );
        }
    }
}
