//! Reply tokens: the `+t123.k7f3qa2b9x` tag in the Reply-To of everything
//! Guichet sends, so that a reply names its ticket (threading rule 2) and
//! proves it answers mail Guichet sent (agent authentication).
//!
//! The tag is `t<id>.<mac>`, where `mac` is the first 50 bits of
//! HMAC-SHA256(secret, "guichet-ticket:<id>") in lower-case base32: short
//! enough for an address, long enough that guessing one costs 2^50 tries.
//! A forged, truncated or re-numbered tag is simply not a token.
//!
//! There are two tokens per ticket, of the same shape under different MAC
//! inputs: the one in mail to customers (`guichet-ticket:<id>`) and the one
//! in mail to agents (`guichet-agent:<id>`). Both thread; only the agents'
//! proves an agent. Otherwise a customer, who holds the token of their
//! own acknowledgement, could write `From: agent@…` to it and have Guichet
//! relay their words, from the support address, to the ticket's Cc'd
//! participants, or obey `#close` lines.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::{EmailAddress, TicketId};

const MAC_CHARS: usize = 10;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Who a token was given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Mail to the customer and the Cc'd participants.
    Customers,
    /// Copies and notices to agents: this token proves an agent.
    Agents,
}

impl Audience {
    fn mac_domain(self) -> &'static str {
        match self {
            Audience::Customers => "guichet-ticket",
            Audience::Agents => "guichet-agent",
        }
    }
}

/// This installation's mark, written in the `X-Guichet-Mail` marker of
/// everything it sends: derived from the token secret (so each install
/// has its own, and it reveals nothing of the secret), 16 hex digits.
pub fn install_mark(secret: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"guichet-install-mark");
    hex::encode(&mac.finalize().into_bytes()[..8])
}

fn mac_for(secret: &[u8], ticket: TicketId) -> String {
    mac_for_audience(secret, ticket, Audience::Customers)
}

fn mac_for_audience(secret: &[u8], ticket: TicketId, audience: Audience) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{}:{}", audience.mac_domain(), ticket.0).as_bytes());
    let digest = mac.finalize().into_bytes();
    // base32 of the first bytes, 5 bits a character
    let mut bits: u64 = 0;
    for b in &digest[..8] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..MAC_CHARS)
        .map(|i| ALPHABET[((bits >> (64 - 5 * (i + 1))) & 31) as usize] as char)
        .collect()
}

/// The tag for a ticket: `t123.k7f3qa2b9x`.
pub fn tag_for(secret: &[u8], ticket: TicketId) -> String {
    format!("t{}.{}", ticket.0, mac_for(secret, ticket))
}

/// `support+t123.k7f3qa2b9x@example.com` for `support@example.com`.
pub fn reply_address(support: &EmailAddress, secret: &[u8], ticket: TicketId) -> String {
    let base = support.without_tag();
    format!(
        "{}+{}@{}",
        base.local_part(),
        tag_for(secret, ticket),
        base.domain()
    )
}

/// The agents' address for a ticket: same shape, the agents' MAC.
pub fn agent_reply_address(support: &EmailAddress, secret: &[u8], ticket: TicketId) -> String {
    let base = support.without_tag();
    format!(
        "{}+t{}.{}@{}",
        base.local_part(),
        ticket.0,
        mac_for_audience(secret, ticket, Audience::Agents),
        base.domain()
    )
}

/// The ticket a tag names, if the tag is genuine (either audience's).
pub fn verify_tag(secret: &[u8], tag: &str) -> Option<TicketId> {
    verify_tag_audience(secret, tag).map(|(t, _)| t)
}

/// The ticket a tag names and whom it was given to, if it is genuine.
pub fn verify_tag_audience(secret: &[u8], tag: &str) -> Option<(TicketId, Audience)> {
    let rest = tag.strip_prefix('t')?;
    let (id, mac) = rest.split_once('.')?;
    if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ticket = TicketId(id.parse().ok()?);
    let given = mac.to_ascii_lowercase();
    [Audience::Customers, Audience::Agents]
        .into_iter()
        .find(|a| {
            let expected = mac_for_audience(secret, ticket, *a);
            // constant-time comparison: a timing oracle would let a stranger forge a tag
            given.len() == expected.len()
                && given
                    .bytes()
                    .zip(expected.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
        .map(|a| (ticket, a))
}

/// The first genuine token among addresses whose base is one of ours.
pub fn find_token<'a>(
    secret: &[u8],
    addresses: impl IntoIterator<Item = &'a EmailAddress>,
    is_support_address: impl Fn(&EmailAddress) -> bool,
) -> Option<TicketId> {
    find_token_audience(secret, addresses, is_support_address).map(|(t, _)| t)
}

/// [`find_token`], with whom the token was given to; an agents' token
/// wins over a customers' one among the addresses.
pub fn find_token_audience<'a>(
    secret: &[u8],
    addresses: impl IntoIterator<Item = &'a EmailAddress>,
    is_support_address: impl Fn(&EmailAddress) -> bool,
) -> Option<(TicketId, Audience)> {
    let mut found: Vec<(TicketId, Audience)> = addresses
        .into_iter()
        .filter_map(|a| {
            let tag = a.tag()?;
            if !is_support_address(&a.without_tag()) {
                return None;
            }
            verify_tag_audience(secret, tag)
        })
        .collect();
    let agents = found.iter().position(|(_, a)| *a == Audience::Agents);
    match agents {
        Some(i) => Some(found.swap_remove(i)),
        None => found.into_iter().next(),
    }
}

/// The ticket a token names when it has a token's exact shape on one of
/// our addresses but verifies under neither audience: most often a token
/// made under an earlier `helpdesk.secret` (every token sent before the
/// key changed), else a forgery. For the log: it threads nothing.
pub fn find_unverified_token<'a>(
    addresses: impl IntoIterator<Item = &'a EmailAddress>,
    is_support_address: impl Fn(&EmailAddress) -> bool,
) -> Option<TicketId> {
    addresses.into_iter().find_map(|a| {
        let tag = a.tag()?;
        if !is_support_address(&a.without_tag()) {
            return None;
        }
        let (id, mac) = tag.strip_prefix('t')?.split_once('.')?;
        let shaped = !id.is_empty()
            && id.len() <= 18
            && id.bytes().all(|b| b.is_ascii_digit())
            && mac.len() == MAC_CHARS
            && mac
                .bytes()
                .all(|b| ALPHABET.contains(&b.to_ascii_lowercase()));
        shaped.then(|| id.parse().ok().map(TicketId)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-test-secret";

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn a_token_names_its_ticket_and_nothing_else() {
        let support = addr("support@example.com");
        let reply = reply_address(&support, SECRET, TicketId(123));
        let parsed = addr(&reply);
        assert!(reply.starts_with("support+t123."));
        assert_eq!(
            verify_tag(SECRET, parsed.tag().unwrap()),
            Some(TicketId(123))
        );

        let tag = tag_for(SECRET, TicketId(123));
        let mac = tag.split_once('.').unwrap().1;
        let cases: Vec<(String, &str)> = vec![
            (format!("t124.{mac}"), "another ticket number"),
            (format!("t123.{}", &mac[..MAC_CHARS - 1]), "truncated"),
            (format!("t123.{mac}x"), "too long"),
            ("t123.aaaaaaaaaa".into(), "forged"),
            (format!("t.{mac}"), "no number"),
            (format!("t-1.{mac}"), "negative"),
            (format!("x123.{mac}"), "no t"),
            ("t123".into(), "no mac"),
            (String::new(), "empty"),
        ];
        for (tag, why) in cases {
            assert_eq!(verify_tag(SECRET, &tag), None, "{why}: {tag}");
        }
        assert_eq!(
            verify_tag(b"another-secret-of-16b", &tag),
            None,
            "a token made under another secret"
        );
        assert!(
            verify_tag(SECRET, &tag.to_uppercase()).is_none(),
            "upper-case T prefix is not ours"
        );
        assert_eq!(
            verify_tag(SECRET, &format!("t123.{}", mac.to_uppercase())),
            Some(TicketId(123)),
            "mail systems may change the case of the local part"
        );
    }

    #[test]
    fn tokens_are_found_only_on_our_addresses() {
        let support = addr("support@example.com");
        let ours = addr(&reply_address(&support, SECRET, TicketId(7)));
        let foreign = addr(&format!(
            "support+{}@evil.example",
            tag_for(SECRET, TicketId(8))
        ));
        let is_ours = |a: &EmailAddress| a == &support;
        assert_eq!(
            find_token(SECRET, [&foreign, &ours], is_ours),
            Some(TicketId(7))
        );
        assert_eq!(find_token(SECRET, [&foreign], is_ours), None);
        assert_eq!(find_token(SECRET, [&support], is_ours), None);
    }

    #[test]
    fn the_agents_token_is_not_the_customers() {
        let support = addr("support@example.com");
        let customers = addr(&reply_address(&support, SECRET, TicketId(9)));
        let agents = addr(&agent_reply_address(&support, SECRET, TicketId(9)));
        assert_ne!(customers, agents);
        assert!(agents.as_str().starts_with("support+t9."), "{agents}");
        let is_ours = |a: &EmailAddress| a == &support;
        assert_eq!(
            find_token_audience(SECRET, [&customers], is_ours),
            Some((TicketId(9), Audience::Customers))
        );
        assert_eq!(
            find_token_audience(SECRET, [&agents], is_ours),
            Some((TicketId(9), Audience::Agents))
        );
        assert_eq!(
            find_token_audience(SECRET, [&customers, &agents], is_ours),
            Some((TicketId(9), Audience::Agents)),
            "an agent's token among the recipients wins"
        );
        assert_eq!(find_token(SECRET, [&agents], is_ours), Some(TicketId(9)));
        // the agents' MAC of one ticket is no token of another
        let mac = agents.tag().unwrap().split_once('.').unwrap().1.to_string();
        assert_eq!(verify_tag(SECRET, &format!("t10.{mac}")), None);
    }

    #[test]
    fn each_installation_has_its_own_mark() {
        let a = install_mark(b"secret one");
        let b = install_mark(b"secret two");
        assert_eq!(a, install_mark(b"secret one"), "stable");
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert!(!a.contains("secret"));
    }
}

#[cfg(test)]
mod unverified_tests {
    use super::*;

    #[test]
    fn a_token_under_another_key_is_recognised_as_such() {
        let support = EmailAddress::parse("support@example.test").unwrap();
        let old = reply_address(&support, b"the-old-secret-0123456789", TicketId(7));
        let old = EmailAddress::parse(&old).unwrap();
        let new_secret = b"the-new-secret-0123456789";
        let ours = |a: &EmailAddress| a.as_str() == "support@example.test";
        assert_eq!(find_token(new_secret, [&old], ours), None);
        assert_eq!(find_unverified_token([&old], ours), Some(TicketId(7)));
        // not a token's shape, or not our address: nothing to say
        for other in [
            "support+t7.short@example.test",
            "support+hello@example.test",
            "other+t7.aaaaaaaaaa@example.test",
        ] {
            let a = EmailAddress::parse(other).unwrap();
            assert_eq!(find_unverified_token([&a], ours), None, "{other}");
        }
    }
}
