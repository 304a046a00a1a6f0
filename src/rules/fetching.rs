//! Reading a mailbox: a message the IMAP server will not give (issue
//! 13), when a failed FETCH of it counts and when it is given up on
//! (recorded as a problem and skipped); and, when several daemons share
//! one mailbox, what must be done with the earlier messages before a
//! daemon stores later ones. The mailbox pass (workers) applies both.

/// How many lone FETCHes of a message may fail (each in a pass where the
/// server gave other messages) before it is recorded as a problem and
/// skipped: a message the server cannot read must not hold up the
/// mailbox, nor be given up on because of a passing fault.
pub const FETCH_ATTEMPTS: i64 = 3;

/// Whether a failed lone FETCH counts towards [`FETCH_ATTEMPTS`]: when
/// the server gave other messages in the same pass, or when this message
/// is the only one it has trouble with. When it gave none and several
/// fail, the server (its storage, say), not the messages, may be the
/// trouble: nothing is given up on for that.
pub fn counts_as_attempt(server_gave_others: bool, other_suspects: usize) -> bool {
    server_gave_others || other_suspects == 0
}

/// Whether a message is given up on after `attempts` failed lone FETCHes.
pub fn gives_up(attempts: i64) -> bool {
    attempts >= FETCH_ATTEMPTS
}

/// What a daemon knows about the messages it selected below the ones it
/// is about to store (`pending`: those not yet known to be done), on a
/// mailbox shared with other daemons.
#[derive(Debug, Clone, Copy)]
pub struct EarlierFacts<'a> {
    /// Selected UIDs below the group, not yet known done (ascending).
    pub pending: &'a [u32],
    /// Those of `pending` the store holds (committed by any daemon).
    pub stored: &'a [u32],
    /// Those of `pending` whose FETCH failed: they are fetched alone at
    /// the end of a pass, out of order by design (issue 13).
    pub failing: &'a [u32],
    /// Another live daemon holds a claim on a UID below the group: it is
    /// fetching or storing them now.
    pub held_by_others: bool,
    /// Of `pending`, those still on the server without the processed
    /// keyword; `None` until the server was asked.
    pub unmarked: Option<&'a [u32]>,
}

/// What to do before storing a group of a shared mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeforeStoring {
    /// Every earlier message is done: store the group.
    Go,
    /// Another daemon is on earlier messages: ask again shortly.
    Wait,
    /// Ask the server which of these are still unflagged there.
    AskServer(Vec<u32>),
    /// Nobody holds these earlier messages and nobody stored them (their
    /// daemon died, or gave them back): this daemon takes them first.
    Take(Vec<u32>),
}

/// Messages are stored in UID order whichever daemon fetched them, so
/// that a reply finds the ticket its original (an earlier UID) opened.
/// Waiting for other daemons' claims is not enough: a daemon that dies
/// holding claims gives them back when it starts again, before it has
/// stored them; those messages are then nobody's, and the daemon waiting
/// behind them must take them itself rather than go past them.
pub fn before_storing(facts: EarlierFacts<'_>) -> BeforeStoring {
    let open: Vec<u32> = facts
        .pending
        .iter()
        .copied()
        .filter(|u| !facts.stored.contains(u) && !facts.failing.contains(u))
        .collect();
    if open.is_empty() {
        return BeforeStoring::Go;
    }
    if facts.held_by_others {
        return BeforeStoring::Wait;
    }
    let Some(unmarked) = facts.unmarked else {
        return BeforeStoring::AskServer(open);
    };
    // flagged (a duplicate stored under another UID, or a message given
    // up on) or gone from the server: done
    let gap: Vec<u32> = open.into_iter().filter(|u| unmarked.contains(u)).collect();
    if gap.is_empty() {
        BeforeStoring::Go
    } else {
        BeforeStoring::Take(gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_messages_are_done_waited_for_or_taken_before_later_ones() {
        use BeforeStoring::*;
        let facts = |pending, stored, failing, held, unmarked| EarlierFacts {
            pending,
            stored,
            failing,
            held_by_others: held,
            unmarked,
        };
        // (facts, decision)
        let table: Vec<(EarlierFacts<'_>, BeforeStoring)> = vec![
            (facts(&[], &[], &[], true, None), Go),
            (facts(&[1, 2], &[1, 2], &[], true, None), Go),
            (facts(&[1, 2], &[1], &[2], false, None), Go),
            // another daemon is on them
            (facts(&[1, 2], &[1], &[], true, None), Wait),
            // nobody holds them: are they flagged or gone?
            (
                facts(&[1, 2, 3], &[1], &[], false, None),
                AskServer(vec![2, 3]),
            ),
            (facts(&[1, 2, 3], &[1], &[], false, Some(&[])), Go),
            // a dead daemon's messages, given back unstored: take them
            (
                facts(&[1, 2, 3], &[1], &[], false, Some(&[3])),
                Take(vec![3]),
            ),
            (
                facts(&[1, 2, 3], &[], &[2], false, Some(&[1, 2, 3])),
                Take(vec![1, 3]),
            ),
        ];
        for (f, want) in table {
            assert_eq!(before_storing(f), want, "{f:?}");
        }
    }

    #[test]
    fn a_failed_lone_fetch_counts_unless_the_server_seems_the_trouble() {
        // (the server gave other messages this pass, other suspects, counts)
        let table = [
            (true, 0, true),
            (true, 5, true),
            (false, 0, true),  // the only trouble: the message
            (false, 3, false), // nothing given, several failing: the server
        ];
        for (gave, others, want) in table {
            assert_eq!(counts_as_attempt(gave, others), want, "{gave} {others}");
        }
        assert!(!gives_up(FETCH_ATTEMPTS - 1));
        assert!(gives_up(FETCH_ATTEMPTS));
    }
}
