//! Reply tokens: the `+t123.k7f3qa2b9x` tag in the Reply-To of everything
//! Guichet sends, so that a reply names its ticket (threading rule 2) and
//! proves it answers mail Guichet sent (agent authentication).
//!
//! The tag is `t<id>.<mac>`, where `mac` is the first 50 bits of
//! HMAC-SHA256(secret, "guichet-ticket:<id>") in lower-case base32: short
//! enough for an address, long enough that guessing one costs 2^50 tries.
//! A forged, truncated or re-numbered tag is simply not a token.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::{EmailAddress, TicketId};

const MAC_CHARS: usize = 10;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn mac_for(secret: &[u8], ticket: TicketId) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("guichet-ticket:{}", ticket.0).as_bytes());
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

/// The ticket a tag names, if the tag is genuine.
pub fn verify_tag(secret: &[u8], tag: &str) -> Option<TicketId> {
    let rest = tag.strip_prefix('t')?;
    let (id, mac) = rest.split_once('.')?;
    if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ticket = TicketId(id.parse().ok()?);
    let expected = mac_for(secret, ticket);
    // constant-time comparison: a timing oracle would let a stranger forge a tag
    let given = mac.to_ascii_lowercase();
    if given.len() != expected.len() {
        return None;
    }
    let diff = given
        .bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (diff == 0).then_some(ticket)
}

/// The first genuine token among addresses whose base is one of ours.
pub fn find_token<'a>(
    secret: &[u8],
    addresses: impl IntoIterator<Item = &'a EmailAddress>,
    is_support_address: impl Fn(&EmailAddress) -> bool,
) -> Option<TicketId> {
    addresses.into_iter().find_map(|a| {
        let tag = a.tag()?;
        if !is_support_address(&a.without_tag()) {
            return None;
        }
        verify_tag(secret, tag)
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
}
