//! A message the IMAP server will not give (issue 13): when a failed
//! FETCH of it counts, and when it is given up on (recorded as a problem
//! and skipped). The mailbox pass (workers) applies it.

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

#[cfg(test)]
mod tests {
    use super::*;

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
