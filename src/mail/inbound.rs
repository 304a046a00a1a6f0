//! An inbound message as plain facts: who, to whom, which thread, what text.
//!
//! [`Inbound::parse`] never fails: mail that mail-parser cannot make sense of
//! still gets a dedup key (the SHA-256 of its bytes) and a `problem`, so
//! it is stored raw and surfaced instead of lost.

use chrono::{DateTime, Utc};
use mail_parser::{Address, HeaderValue, Message, MessageParser, PartType};
use sha2::{Digest, Sha256};

use crate::domain::EmailAddress;
use crate::rules::attachments::{tnef, uuencode};

/// The text body of the message's first `winmail.dat` that carries one.
fn tnef_text(msg: &Message<'_>) -> Option<String> {
    msg.attachments.iter().find_map(|&id| {
        let part = msg.parts.get(id as usize)?;
        match &part.body {
            PartType::Binary(b) | PartType::InlineBinary(b) if b.starts_with(&tnef::SIGNATURE) => {
                tnef::decode(b).ok()?.text()
            }
            _ => None,
        }
    })
}

#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// Without `<>`.
    pub message_id: Option<String>,
    /// What makes this message "already seen": its Message-ID, or the
    /// SHA-256 of its bytes when it has none.
    pub dedup_key: String,
    pub from: Option<EmailAddress>,
    pub from_name: Option<String>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    /// `Delivered-To`, `X-Original-To`, `Envelope-To`: where a reply token
    /// may hide when the visible To does not show it.
    pub delivered_to: Vec<EmailAddress>,
    pub reply_to: Vec<EmailAddress>,
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The plain-text body (generated from HTML when there is none).
    pub text: String,
    /// `text` was generated from an HTML part (the message has no
    /// text/plain body): its quotes are the HTML's containers, which the
    /// generated text has lost, so read `html` instead.
    pub text_from_html: bool,
    /// The HTML body (generated from the text when there is none).
    pub html: Option<String>,
    /// Raw `Authentication-Results` values, top first.
    pub authentication_results: Vec<String>,
    /// `Return-Path`: `Some("")` for the empty path `<>`.
    pub return_path: Option<String>,
    /// What was wrong with the message, if anything (unparseable, no
    /// sender, no Message-ID…).
    pub problem: Option<String>,
}

pub fn parse_message(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

/// `sha256:<hex>` of the message without its trace headers (`Received`,
/// `Return-Path`, `Delivered-To`, `X-Original-To`…), which each delivery
/// adds anew: the same message delivered twice has the same key.
pub fn content_key(raw: &[u8]) -> String {
    const TRACE: &[&[u8]] = &[
        b"received:",
        b"return-path:",
        b"delivered-to:",
        b"x-original-to:",
        b"x-delivered-to:",
    ];
    let mut hasher = Sha256::new();
    let mut rest = raw;
    let mut skipping = false;
    // header lines until the first empty line; the body is hashed whole
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(rest.len());
        let line = &rest[..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            let lower = line.to_ascii_lowercase();
            skipping = TRACE.iter().any(|t| lower.starts_with(t));
        }
        if !skipping {
            hasher.update(line);
        }
        rest = &rest[end..];
    }
    hasher.update(rest);
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

impl Inbound {
    pub fn parse(raw: &[u8]) -> Inbound {
        Self::read(raw).1
    }

    /// The parsed message, when mail-parser makes sense of it, and its
    /// facts, from one parse.
    pub fn read(raw: &[u8]) -> (Option<Message<'_>>, Inbound) {
        let msg = parse_message(raw);
        let facts = match &msg {
            Some(m) => Self::from_message(m, raw),
            None => Inbound {
                dedup_key: content_key(raw),
                problem: Some("mail-parser could not find any header in this message".into()),
                ..Default::default()
            },
        };
        (msg, facts)
    }

    pub fn from_message(msg: &Message<'_>, raw: &[u8]) -> Inbound {
        let message_id = msg
            .message_id()
            .map(|s| s.trim().trim_matches(['<', '>']).to_string())
            .filter(|s| !s.is_empty());
        let mut problems = Vec::new();
        let dedup_key = match &message_id {
            Some(id) => format!("mid:{id}"),
            None => {
                problems.push("no Message-ID: deduplicated by content hash".to_string());
                content_key(raw)
            }
        };
        let (from, from_name) = match msg.from().and_then(first_mailbox) {
            Some((addr, name)) => (
                Some(addr),
                name.map(|n| one_line(&n)).filter(|n| !n.is_empty()),
            ),
            None => {
                problems.push("no usable From address".to_string());
                (None, None)
            }
        };
        let mut delivered_to = Vec::new();
        for name in ["Delivered-To", "X-Original-To", "Envelope-To"] {
            for v in msg.header_values(name) {
                if let Some(text) = v.as_text() {
                    delivered_to.extend(EmailAddress::parse(text).ok());
                }
            }
        }
        let return_path = msg
            .header_raw("Return-Path")
            .map(|v| v.trim().trim_matches(['<', '>']).trim().to_string());
        // the sender's own HTML only: `body_html` would make some out of
        // a text/plain body, quote and all (a mutt reply's HTML then kept
        // what its text lost)
        let html = match msg.html_part(0).map(|p| &p.body) {
            Some(PartType::Html(h)) => Some(h.to_string()),
            _ => None,
        };
        let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
        let text_from_html = matches!(msg.text_part(0).map(|p| &p.body), Some(PartType::Html(_)));
        // uuencoded files are files (attachments::file_parts), not text
        let text = if text_from_html {
            text
        } else {
            uuencode::strip_blocks(&text)
        };
        // Outlook may put the whole body in its winmail.dat
        let text = if text.trim().is_empty() && html.is_none() {
            tnef_text(msg).unwrap_or(text)
        } else {
            text
        };
        Inbound {
            message_id,
            dedup_key,
            from,
            from_name,
            to: addresses(msg.to()),
            cc: addresses(msg.cc()),
            delivered_to,
            reply_to: addresses(msg.reply_to()),
            subject: one_line(msg.subject().unwrap_or("")),
            date: msg
                .date()
                .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
            in_reply_to: id_list(msg.in_reply_to()),
            references: id_list(msg.references()),
            text,
            text_from_html,
            html,
            authentication_results: msg
                .header_values("Authentication-Results")
                .filter_map(|v| v.as_text().map(str::to_string))
                .collect(),
            return_path,
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }

    /// Every address this message was sent to (To, Cc, and the delivery
    /// headers), for reply tokens and departments.
    pub fn recipients(&self) -> impl Iterator<Item = &EmailAddress> {
        self.to
            .iter()
            .chain(self.cc.iter())
            .chain(self.delivered_to.iter())
    }

    /// In-Reply-To first, then References from the newest to the oldest:
    /// the order in which a referenced Message-ID is most telling.
    pub fn referenced_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.in_reply_to.clone();
        for id in self.references.iter().rev() {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }
}

fn id_list(v: &HeaderValue<'_>) -> Vec<String> {
    v.as_text_list()
        .map(|l| {
            l.iter()
                .map(|s| s.trim().trim_matches(['<', '>']).to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn first_mailbox(a: &Address<'_>) -> Option<(EmailAddress, Option<String>)> {
    a.iter().find_map(|addr| {
        let email = EmailAddress::parse(addr.address.as_deref()?).ok()?;
        Some((email, addr.name.as_ref().map(|n| n.to_string())))
    })
}

fn addresses(a: Option<&Address<'_>>) -> Vec<EmailAddress> {
    a.map(|a| {
        a.iter()
            .filter_map(|addr| EmailAddress::parse(addr.address.as_deref()?).ok())
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_come_out_of_a_reply() {
        let raw = b"From: Ann <Ann@Example.com>\r\nTo: support+t1.abc@example.test\r\n\
Cc: bob@example.com, Carol <carol@example.com>\r\nDelivered-To: support+t9.x@example.test\r\n\
Subject: =?utf-8?q?Re=3A_=5B=2312=5D_caf=C3=A9?=\r\nMessage-ID: <m2@example.com>\r\n\
In-Reply-To: <m1@example.com>\r\nReferences: <m0@example.com> <m1@example.com>\r\n\
Date: Tue, 3 Nov 2026 10:00:00 +0100\r\n\r\nHello\r\n";
        let m = Inbound::parse(raw);
        assert_eq!(m.message_id.as_deref(), Some("m2@example.com"));
        assert_eq!(m.dedup_key, "mid:m2@example.com");
        assert_eq!(m.from.as_ref().unwrap().as_str(), "ann@example.com");
        assert_eq!(m.from_name.as_deref(), Some("Ann"));
        assert_eq!(m.subject, "Re: [#12] café");
        assert_eq!(m.cc.len(), 2);
        assert_eq!(m.delivered_to[0].as_str(), "support+t9.x@example.test");
        assert_eq!(
            m.referenced_ids(),
            vec!["m1@example.com".to_string(), "m0@example.com".to_string()]
        );
        assert_eq!(m.date.unwrap().to_rfc3339(), "2026-11-03T09:00:00+00:00");
        assert!(m.text.contains("Hello"));
        assert!(!m.text_from_html);
        assert!(m.problem.is_none());
    }

    #[test]
    fn uuencoded_blocks_leave_the_text_and_a_winmail_body_fills_an_empty_one() {
        let raw = b"From: a@b.c\r\nContent-Type: text/plain\r\n\r\nHere it is:\r\n\r\nbegin 644 cat.txt\r\n#0V%T\r\n`\r\nend\r\n\r\nAnn\r\n";
        let m = Inbound::parse(raw);
        assert_eq!(m.text, "Here it is:\r\n\r\n\r\nAnn\r\n");
        let tnef = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tnef/triples.tnef"
        ))
        .unwrap();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&tnef);
        let raw = format!(
            "From: a@b.c\r\nMIME-Version: 1.0\r\nContent-Type: application/ms-tnef; name=winmail.dat\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
        );
        let m = Inbound::parse(raw.as_bytes());
        assert_eq!(m.text, "Sample description");
    }

    #[test]
    fn text_generated_from_html_is_marked() {
        let html_only = b"From: a@b.c\r\nContent-Type: text/html\r\n\r\n<p>Hi</p><blockquote>old</blockquote>\r\n";
        let m = Inbound::parse(html_only);
        assert!(m.text_from_html && m.text.contains("Hi"), "{m:?}");
        let alternative = b"From: a@b.c\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n\
--x\r\nContent-Type: text/plain\r\n\r\nHi\r\n> old\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>Hi</p>\r\n--x--\r\n";
        let m = Inbound::parse(alternative);
        assert!(!m.text_from_html && m.text.contains("> old"), "{m:?}");
        assert_eq!(m.html.as_deref().map(str::trim), Some("<p>Hi</p>"));
    }

    /// mail-parser's `body_html` makes HTML out of a text/plain body; a
    /// text-only mail (mutt) has no HTML of its own, or its quote would
    /// reach the customer through it.
    #[test]
    fn a_text_only_mail_has_no_html() {
        let raw = b"From: a@b.c\r\nContent-Type: text/plain\r\n\r\nHi\r\n\r\nOn Monday, B wrote:\r\n> old\r\n";
        let m = Inbound::parse(raw);
        assert_eq!(m.html, None, "{m:?}");
        let mixed = b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n\
--x\r\nContent-Type: text/plain\r\n\r\nHi\r\n--x\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--x--\r\n";
        assert_eq!(Inbound::parse(mixed).html, None);
    }

    #[test]
    fn broken_mail_still_has_a_key_and_a_problem() {
        let m = Inbound::parse(b"\x00\x01\x02 not a mail at all");
        assert!(m.dedup_key.starts_with("sha256:"));
        assert!(m.problem.is_some());
        let m = Inbound::parse(b"Subject: hi\r\n\r\nno id, no from\r\n");
        assert!(m.dedup_key.starts_with("sha256:"));
        let p = m.problem.unwrap();
        assert!(p.contains("no Message-ID") && p.contains("From"), "{p}");
    }

    #[test]
    fn the_content_key_ignores_what_each_delivery_adds() {
        let body = b"Subject: hi\r\n\r\nbody\r\n";
        let delivered = b"Return-Path: <a@b>\r\nDelivered-To: x@y\r\nReceived: from a\r\n  by b; Tue\r\nSubject: hi\r\n\r\nbody\r\n";
        assert_eq!(content_key(body), content_key(delivered));
        assert_ne!(
            content_key(body),
            content_key(b"Subject: hi\r\n\r\nbody!\r\n")
        );
        assert_ne!(
            content_key(body),
            content_key(b"Subject: ho\r\n\r\nbody\r\n")
        );
    }
}

/// A header value as one line: an encoded word (`=?utf-8?q?a=0D=0Ab?=`)
/// may decode to line breaks and other control characters, which would
/// spill into the body of every mail that shows the value. Each run of
/// white space and control characters becomes one space.
pub fn one_line(value: &str) -> String {
    value
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod one_line_tests {
    use super::*;

    #[test]
    fn header_values_are_one_line() {
        for (raw, want) in [
            ("Printer\r\n\r\nINJECTED", "Printer INJECTED"),
            ("  a\tb\u{0}c\u{85}d  ", "a b c d"),
            ("plain", "plain"),
            ("", ""),
        ] {
            assert_eq!(one_line(raw), want, "{raw:?}");
        }
        let m = "From: =?utf-8?q?Eve=0AX?= <e@x.test>\r\nSubject: =?utf-8?q?A=0D=0AB?=\r\n\r\nhi";
        let facts = Inbound::parse(m.as_bytes());
        assert_eq!(facts.subject, "A B");
        assert_eq!(facts.from_name.as_deref(), Some("Eve X"));
    }
}
