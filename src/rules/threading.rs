//! Threading: which ticket a message belongs to (SPEC "Threading").
//!
//! The caller gathers the clues (is the message stored already, which ticket
//! a genuine reply token names, which ticket a referenced Message-ID belongs
//! to, which ticket the subject tag names and whether the sender takes part
//! in it); [`place`] applies the five rules in SPEC order, first match wins,
//! and says why each earlier rule did not match.

use serde::Serialize;

use crate::domain::TicketId;

/// What the store and the headers say about one inbound message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clues {
    /// Rule 1: its Message-ID (or content hash) is stored already.
    pub already_seen: bool,
    /// Rule 2: the ticket a genuine reply token in To/Cc/Delivered-To/
    /// X-Original-To names.
    pub token: Option<TicketId>,
    /// Rule 3: the ticket of a Message-ID named in In-Reply-To/References,
    /// with that Message-ID.
    pub header_match: Option<(TicketId, String)>,
    /// How many Message-IDs In-Reply-To/References named (for the trace).
    pub referenced_ids: usize,
    /// Rule 4: the ticket number in the subject tag, if any, and whether
    /// such a ticket exists.
    pub subject_tag: Option<TicketId>,
    pub subject_ticket_exists: bool,
    /// Whether the sender is a participant of the subject tag's ticket
    /// (its customer, a Cc'd address on it, or an agent).
    pub sender_is_participant: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    AlreadySeen,
    Token,
    Headers,
    SubjectTag,
    New,
}

impl Rule {
    /// The name shown in `tickets show` (`rule` of a message).
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::AlreadySeen => "already_seen",
            Rule::Token => "token",
            Rule::Headers => "headers",
            Rule::SubjectTag => "subject_tag",
            Rule::New => "new",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub rule: Rule,
    /// The ticket for `Token`, `Headers`, `SubjectTag`; `None` for `New`
    /// and `AlreadySeen`.
    pub ticket: Option<TicketId>,
    /// One line per rule tried, in order.
    pub trace: Vec<String>,
}

pub fn place(c: &Clues) -> Placement {
    let mut trace = Vec::new();
    let found = |rule, ticket: Option<TicketId>, mut trace: Vec<String>, why: String| {
        trace.push(why);
        Placement {
            rule,
            ticket,
            trace,
        }
    };

    if c.already_seen {
        return found(
            Rule::AlreadySeen,
            None,
            trace,
            "1 already seen: this message is stored already; it is not stored again".into(),
        );
    }
    trace.push("1 already seen: no, this message is new".into());

    if let Some(t) = c.token {
        return found(
            Rule::Token,
            Some(t),
            trace,
            format!("2 reply token: a genuine token names ticket {t}"),
        );
    }
    trace.push("2 reply token: no genuine token in the recipient addresses".into());

    if let Some((t, id)) = &c.header_match {
        return found(
            Rule::Headers,
            Some(*t),
            trace,
            format!("3 headers: <{id}> belongs to ticket {t}"),
        );
    }
    trace.push(if c.referenced_ids == 0 {
        "3 headers: no In-Reply-To or References".into()
    } else {
        format!(
            "3 headers: none of the {} referenced Message-IDs is known",
            c.referenced_ids
        )
    });

    match c.subject_tag {
        Some(t) if c.subject_ticket_exists && c.sender_is_participant => {
            return found(
                Rule::SubjectTag,
                Some(t),
                trace,
                format!("4 subject tag: names ticket {t} and the sender takes part in it"),
            );
        }
        Some(t) if c.subject_ticket_exists => trace.push(format!(
            "4 subject tag: names ticket {t}, but the sender is not one of its participants, \
             so it is not trusted (anti-hijack)"
        )),
        Some(t) => trace.push(format!("4 subject tag: ticket {t} does not exist")),
        None => trace.push("4 subject tag: none in the subject".into()),
    }

    found(
        Rule::New,
        None,
        trace,
        "5 new ticket: no earlier rule matched".into(),
    )
}

/// The configured subject tag pattern (`[#{id}]`), split around `{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTag {
    prefix: String,
    suffix: String,
}

impl SubjectTag {
    /// `pattern` must contain `{id}` once (checked by the settings loader).
    pub fn new(pattern: &str) -> Self {
        let (prefix, suffix) = pattern.split_once("{id}").unwrap_or((pattern, ""));
        Self {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        }
    }

    pub fn render(&self, ticket: TicketId) -> String {
        format!("{}{}{}", self.prefix, ticket.0, self.suffix)
    }

    /// The ticket number of the first tag in a (decoded) subject. `Re:`,
    /// `AW:`, `TR:` prefixes do not matter: the tag is looked for anywhere.
    pub fn find(&self, subject: &str) -> Option<TicketId> {
        subject
            .match_indices(self.prefix.as_str())
            .find_map(|(pos, _)| {
                let after = &subject[pos + self.prefix.len()..];
                let n = after.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 || n > 18 || !after[n..].starts_with(self.suffix.as_str()) {
                    return None;
                }
                after[..n]
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(TicketId)
            })
    }

    /// The subject of mail about `ticket`: the tag in front, once.
    pub fn apply(&self, subject: &str, ticket: TicketId) -> String {
        let subject = subject.trim();
        if self.find(subject) == Some(ticket) {
            return subject.to_string();
        }
        if subject.is_empty() {
            return self.render(ticket);
        }
        format!("{} {}", self.render(ticket), subject)
    }
}

/// Reply subject: `Re: ` once in front (no `Re: Re: Re:`).
pub fn reply_subject(subject: &str) -> String {
    let s = subject.trim();
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("re:") || lower.starts_with("re :") {
        s.to_string()
    } else {
        format!("Re: {s}")
    }
}

/// How many of a References chain's newest ids outgoing mail keeps,
/// besides the first (see [`cap_references`]).
pub const REFERENCES_KEPT_NEWEST: usize = 10;

/// A References chain trimmed for outgoing mail: the first id (the thread's
/// root) and the `REFERENCES_KEPT_NEWEST` newest, in their order. RFC 5322
/// §3.6.4 lets a reply's References grow by one id each time; trimming the
/// middle, as common clients do, keeps the header bounded while the root
/// and the direct parents still thread. Nothing is added or reordered.
pub fn cap_references(chain: &[String]) -> Vec<String> {
    if chain.len() <= REFERENCES_KEPT_NEWEST + 1 {
        return chain.to_vec();
    }
    let newest = &chain[chain.len() - REFERENCES_KEPT_NEWEST..];
    std::iter::once(&chain[0]).chain(newest).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clues() -> Clues {
        Clues::default()
    }

    #[test]
    fn the_first_matching_rule_wins_in_spec_order() {
        let t = |n| Some(TicketId(n));
        #[rustfmt::skip]
        let table: Vec<(&str, Clues, Rule, Option<TicketId>)> = vec![
            ("nothing known", clues(), Rule::New, None),
            ("seen beats everything", Clues { already_seen: true, token: t(1), header_match: Some((TicketId(2), "a@b".into())), ..clues() }, Rule::AlreadySeen, None),
            ("token beats headers", Clues { token: t(1), header_match: Some((TicketId(2), "a@b".into())), ..clues() }, Rule::Token, t(1)),
            ("headers beat subject", Clues { header_match: Some((TicketId(2), "a@b".into())), subject_tag: t(3), subject_ticket_exists: true, sender_is_participant: true, ..clues() }, Rule::Headers, t(2)),
            ("subject tag from a participant", Clues { subject_tag: t(3), subject_ticket_exists: true, sender_is_participant: true, ..clues() }, Rule::SubjectTag, t(3)),
            ("subject tag from a stranger opens a new ticket", Clues { subject_tag: t(3), subject_ticket_exists: true, sender_is_participant: false, ..clues() }, Rule::New, None),
            ("subject tag of a missing ticket", Clues { subject_tag: t(99), subject_ticket_exists: false, sender_is_participant: true, ..clues() }, Rule::New, None),
            ("unknown references", Clues { referenced_ids: 3, ..clues() }, Rule::New, None),
        ];
        for (name, c, rule, ticket) in table {
            let p = place(&c);
            assert_eq!((p.rule, p.ticket), (rule, ticket), "{name}: {:#?}", p.trace);
            assert!(!p.trace.is_empty(), "{name}: no trace");
        }
    }

    #[test]
    fn the_trace_says_why_each_rule_did_not_match() {
        let p = place(&Clues {
            subject_tag: Some(TicketId(3)),
            subject_ticket_exists: true,
            referenced_ids: 2,
            ..clues()
        });
        assert_eq!(p.trace.len(), 5);
        assert!(p.trace[2].contains("none of the 2 referenced"));
        assert!(p.trace[3].contains("anti-hijack"));
    }

    #[test]
    fn subject_tags_are_found_behind_any_prefix() {
        let tag = SubjectTag::new("[#{id}]");
        #[rustfmt::skip]
        let table = [
            ("[#123] Printer on fire", Some(123)),
            ("Re: [#123] Printer on fire", Some(123)),
            ("RE : [#123] Printer", Some(123)),
            ("AW: Re: [#42] Drucker", Some(42)),
            ("TR: Fwd: [#7]", Some(7)),
            ("Printer [#8] again", Some(8)),
            ("[#] empty", None),
            ("[#12a] not digits", None),
            ("[#0] zero", None),
            ("#123 no brackets", None),
            ("[# 12] space", None),
            ("[#99999999999999999999999] too long", None),
            ("[#x] then [#5]", Some(5)),
            ("", None),
            ("Ünïcödé [#31] ✓", Some(31)),
        ];
        for (subject, want) in table {
            assert_eq!(tag.find(subject), want.map(TicketId), "{subject}");
        }
        let other = SubjectTag::new("Ticket#{id}:");
        assert_eq!(other.find("AW: Ticket#2024: Hallo"), Some(TicketId(2024)));
        assert_eq!(other.find("Ticket#2024 Hallo"), None);
    }

    #[test]
    fn the_tag_is_applied_once() {
        let tag = SubjectTag::new("[#{id}]");
        assert_eq!(tag.apply("Help", TicketId(5)), "[#5] Help");
        assert_eq!(tag.apply("Re: [#5] Help", TicketId(5)), "Re: [#5] Help");
        assert_eq!(tag.apply("", TicketId(5)), "[#5]");
        assert_eq!(reply_subject("[#5] Help"), "Re: [#5] Help");
        assert_eq!(reply_subject("RE: [#5] Help"), "RE: [#5] Help");
    }

    #[test]
    fn references_keep_the_root_and_the_ten_newest() {
        let ids = |n: usize| -> Vec<String> { (0..n).map(|i| format!("m{i}@x")).collect() };
        let kept_newest = |n: usize, k: usize| -> Vec<String> { ids(n).split_off(n - k) };
        let table: Vec<(usize, Vec<String>)> = vec![
            (0, vec![]),
            (1, ids(1)),
            (2, ids(2)),
            (11, ids(11)),
            (12, [vec!["m0@x".to_string()], kept_newest(12, 10)].concat()),
            (
                100,
                [vec!["m0@x".to_string()], kept_newest(100, 10)].concat(),
            ),
        ];
        for (n, want) in table {
            let chain = ids(n);
            let got = cap_references(&chain);
            assert_eq!(got, want, "chain of {n} ids");
            assert!(
                got.len() <= REFERENCES_KEPT_NEWEST + 1,
                "chain of {n}: {got:?}"
            );
            assert_eq!(
                got.last(),
                chain.last(),
                "chain of {n}: the last id is kept"
            );
            assert_eq!(got.first(), chain.first(), "chain of {n}: the root is kept");
            let mut unique = got.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                got.len(),
                "chain of {n}: duplicates in {got:?}"
            );
            // order kept: `got` is a subsequence of `chain`
            let mut rest = chain.iter();
            assert!(
                got.iter().all(|g| rest.any(|c| c == g)),
                "chain of {n}: order changed in {got:?}"
            );
        }
    }
}
