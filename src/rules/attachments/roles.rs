//! What each non-body part of a mail is taken for, before any file
//! policy (issue 19): most parts are files the customer attached, but
//! mail clients add parts of their own that are not files at all:
//!
//! | part | taken for | what happens |
//! |---|---|---|
//! | `application/pkcs7-signature`, `x-pkcs7-signature`, `pgp-signature` | a signature | never gated, stored or listed; the message is noted as signed |
//! | `application/pgp-encrypted` (the `Version: 1` control part) | part of an encryption wrapper | ignored |
//! | the encrypted payload (`multipart/encrypted`, S/MIME `enveloped-data`) | an encrypted body | kept raw with the message; the agents are told it cannot be read |
//! | an image referenced by `cid:` from the HTML body | a body image (a pasted screenshot, a logo) | judged by content, size and antivirus; never causes a refusal notice; a tiny one (a tracking pixel, a spacer) is dropped without a word |
//! | Exchange's `ATT00001.txt` / `ATT00001.htm` | a footer the server added | not a file |
//! | `text/vcard` / `.vcf` | the sender's contact card | not a file; the agents' copy names it |
//! | `text/calendar` / `.ics` | an invitation | not a file; the agents' copy gives its title and time |
//! | the body a `winmail.dat` carries (`body.rtf`, `body.html`, `body.txt`) | the message's body | the file policy and antivirus; never causes a refusal notice |
//! | anything else | a file | the attachment policy, refusal notice included |

use super::{FilePart, Origin};

/// What a part is taken for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    File,
    /// An image the HTML body shows (`cid:`).
    BodyImage,
    /// The body a `winmail.dat` carries ([`Origin::TnefBody`]).
    MessageBody,
    /// A tracking pixel or spacer: a body image of at most
    /// [`TINY_PIXELS`] pixels (or, unmeasurable, [`TINY_BYTES`] bytes).
    TinyImage,
    Signature(SignatureKind),
    /// A control part of an encryption wrapper (`Version: 1`).
    EncryptionControl,
    /// The encrypted body itself.
    Encrypted(SignatureKind),
    /// A part a mail server adds (`ATT00001.txt`).
    ClientFooter,
    ContactCard {
        name: Option<String>,
    },
    Invitation(Invitation),
}

/// Which standard a signature or an encryption follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    Smime,
    Pgp,
}

impl SignatureKind {
    pub fn name(self) -> &'static str {
        match self {
            SignatureKind::Smime => "S/MIME",
            SignatureKind::Pgp => "PGP/MIME",
        }
    }
}

/// A calendar invitation, as the agents' copy shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invitation {
    pub summary: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub location: Option<String>,
}

/// Up to this many pixels (width × height), a body image is a pixel or
/// a spacer, not a picture anyone looks at.
pub const TINY_PIXELS: u64 = 16;
/// A body image whose size cannot be read is tiny at this many bytes.
pub const TINY_BYTES: usize = 128;

/// What `part` is taken for. `body_cids`: the `cid:` references of the
/// message's HTML body (without `cid:`, lower case); `encrypted`: the
/// message is a `multipart/encrypted` (its payload is then no file).
pub fn role_of(part: &FilePart<'_>, body_cids: &[String], encrypted: bool) -> Role {
    if part.origin == Origin::TnefBody {
        return Role::MessageBody;
    }
    let ty = part.declared_type.as_str();
    let name = part
        .raw_name
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ty {
        "application/pkcs7-signature" | "application/x-pkcs7-signature" => {
            return Role::Signature(SignatureKind::Smime);
        }
        "application/pgp-signature" => return Role::Signature(SignatureKind::Pgp),
        "application/pgp-encrypted" => return Role::EncryptionControl,
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
            return Role::Encrypted(SignatureKind::Smime);
        }
        _ => {}
    }
    if name.ends_with(".p7s") {
        return Role::Signature(SignatureKind::Smime);
    }
    if encrypted
        && (ty == "application/octet-stream" || part.bytes.starts_with(b"-----BEGIN PGP MESSAGE"))
    {
        return Role::Encrypted(SignatureKind::Pgp);
    }
    if is_exchange_footer(&name) && ty.starts_with("text/") {
        return Role::ClientFooter;
    }
    if matches!(ty, "text/vcard" | "text/x-vcard" | "text/directory") || name.ends_with(".vcf") {
        return Role::ContactCard {
            name: vcard_name(&part.bytes),
        };
    }
    if matches!(ty, "text/calendar" | "application/ics") || name.ends_with(".ics") {
        return Role::Invitation(invitation(&part.bytes));
    }
    let referenced = part
        .content_id
        .as_deref()
        .is_some_and(|cid| body_cids.iter().any(|c| *c == cid));
    if referenced && (ty.starts_with("image/") || ty == "application/octet-stream") {
        return if is_tiny(&part.bytes) {
            Role::TinyImage
        } else {
            Role::BodyImage
        };
    }
    Role::File
}

/// `ATT00001.txt`, `ATT00002.htm`…: what Exchange adds after an
/// attachment (a footer or disclaimer of the sender's server).
fn is_exchange_footer(lower_name: &str) -> bool {
    let Some(rest) = lower_name.strip_prefix("att") else {
        return false;
    };
    let Some((digits, ext)) = rest.split_once('.') else {
        return false;
    };
    digits.len() == 5
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(ext, "txt" | "htm" | "html")
}

/// The `cid:` references of an HTML body, lower case, without `cid:`.
pub fn cids_in_html(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("cid:") {
        let after = &rest[at + 4..];
        let end = after
            .find(['"', '\'', ')', '>', ' ', '\t', '\r', '\n'])
            .unwrap_or(after.len());
        let cid = after[..end].trim();
        if !cid.is_empty() {
            out.push(percent_decoded(cid));
        }
        rest = &after[end..];
    }
    out.sort();
    out.dedup();
    out
}

/// `cid:` URLs are percent-encoded (RFC 2392).
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // by bytes: `%` may stand before a multi-byte character
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Width and height of a PNG, GIF or JPEG, read from its header.
pub fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some((w, h));
    }
    if (bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) && bytes.len() >= 10 {
        let w = u16::from_le_bytes([bytes[6], bytes[7]]);
        let h = u16::from_le_bytes([bytes[8], bytes[9]]);
        return Some((u32::from(w), u32::from(h)));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // walk the segments to the first start-of-frame
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            let marker = bytes[i + 1];
            let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
            if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
                let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
                let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
                return Some((u32::from(w), u32::from(h)));
            }
            i += 2 + len;
        }
    }
    None
}

fn is_tiny(bytes: &[u8]) -> bool {
    match image_size(bytes) {
        Some((w, h)) => u64::from(w) * u64::from(h) <= TINY_PIXELS,
        None => bytes.len() <= TINY_BYTES,
    }
}

/// A value shown on one line of the agents' copy: control characters
/// and runs of blanks as one space, at most 200 characters.
fn one_line(v: &str) -> String {
    let joined = v
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    joined.chars().take(200).collect()
}

/// Unfolded `NAME:value` lines of a vCard or iCalendar text.
fn content_lines(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.trim_end_matches('\r');
        match (raw.chars().next(), lines.last_mut()) {
            (Some(' ' | '\t'), Some(last)) => last.push_str(&raw[1..]),
            _ => lines.push(raw.to_string()),
        }
    }
    lines
        .into_iter()
        .filter_map(|l| {
            let (key, value) = l.split_once(':')?;
            // parameters (`DTSTART;TZID=Europe/Paris`) are dropped
            let name = key.split(';').next()?.trim().to_ascii_uppercase();
            Some((name, unescape(value.trim())))
        })
        .collect()
}

fn unescape(v: &str) -> String {
    v.replace("\\n", " ")
        .replace("\\N", " ")
        .replace("\\,", ",")
        .replace("\\;", ";")
        .replace("\\\\", "\\")
}

fn vcard_name(bytes: &[u8]) -> Option<String> {
    content_lines(bytes)
        .into_iter()
        .find(|(k, v)| k == "FN" && !v.is_empty())
        .map(|(_, v)| one_line(&v))
}

/// The first event of an iCalendar text.
fn invitation(bytes: &[u8]) -> Invitation {
    let mut out = Invitation::default();
    let mut in_event = false;
    for (k, v) in content_lines(bytes) {
        match (k.as_str(), in_event) {
            ("BEGIN", _) if v.eq_ignore_ascii_case("VEVENT") => in_event = true,
            ("END", true) if v.eq_ignore_ascii_case("VEVENT") => break,
            ("SUMMARY", true) => out.summary = Some(one_line(&v)),
            ("DTSTART", true) => out.start = Some(ical_time(&v)),
            ("DTEND", true) => out.end = Some(ical_time(&v)),
            ("LOCATION", true) if !v.is_empty() => out.location = Some(one_line(&v)),
            _ => {}
        }
    }
    out
}

/// `20261205T140000Z` as `2026-12-05 14:00 UTC`; `20261205` as a day;
/// anything else as it is.
fn ical_time(v: &str) -> String {
    let b = v.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    if v.len() >= 8 && digits(0..8) {
        let day = format!("{}-{}-{}", &v[0..4], &v[4..6], &v[6..8]);
        if v.len() >= 13 && b[8] == b'T' && digits(9..13) {
            let zone = if v.ends_with('Z') { " UTC" } else { "" };
            return format!("{day} {}:{}{zone}", &v[9..11], &v[11..13]);
        }
        return day;
    }
    one_line(v)
}

impl Invitation {
    /// One line for the agents' copy.
    pub fn describe(&self) -> String {
        let mut s = self.summary.clone().unwrap_or_else(|| "(no title)".into());
        match (&self.start, &self.end) {
            (Some(a), Some(b)) => s.push_str(&format!(", {a} – {b}")),
            (Some(a), None) => s.push_str(&format!(", {a}")),
            _ => {}
        }
        if let Some(l) = &self.location {
            s.push_str(&format!(", {l}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn percent_decoding_takes_bytes_not_characters() {
        assert_eq!(percent_decoded("a%20b%41"), "a bA");
        // found by the fuzz loop: `%` before a multi-byte character
        assert_eq!(percent_decoded("x%é1"), "x%é1");
        assert_eq!(percent_decoded("%%%"), "%%%");
    }

    fn part<'a>(ty: &str, name: Option<&str>, cid: Option<&str>, bytes: &'a [u8]) -> FilePart<'a> {
        FilePart {
            index: 1,
            raw_name: name.map(str::to_string),
            declared_type: ty.to_string(),
            inline: cid.is_some(),
            bytes: Cow::Borrowed(bytes),
            malformed: false,
            content_id: cid.map(str::to_string),
            origin: Origin::Mime,
        }
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0]);
        b.resize(400, 0);
        b
    }

    #[test]
    fn each_kind_of_part_is_taken_for_what_it_is() {
        let big = png(640, 480);
        let pixel = png(1, 1);
        let cids = cids_in_html(r#"<img src="cid:image001.png@01D9"><img src='CID:px'>"#);
        let vcard = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jane Doe\r\nEND:VCARD\r\n";
        let ics = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Demo of the\r\n  new portal\r\nDTSTART:20261205T140000Z\r\nDTEND:20261205T150000Z\r\nLOCATION:Room 2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let table: Vec<(FilePart, bool, Role)> = vec![
            (
                part("application/pkcs7-signature", Some("smime.p7s"), None, b"x"),
                false,
                Role::Signature(SignatureKind::Smime),
            ),
            (
                part("application/x-pkcs7-signature", None, None, b"x"),
                false,
                Role::Signature(SignatureKind::Smime),
            ),
            (
                part("application/octet-stream", Some("smime.p7s"), None, b"x"),
                false,
                Role::Signature(SignatureKind::Smime),
            ),
            (
                part(
                    "application/pgp-signature",
                    Some("signature.asc"),
                    None,
                    b"x",
                ),
                false,
                Role::Signature(SignatureKind::Pgp),
            ),
            (
                part("application/pgp-encrypted", None, None, b"Version: 1"),
                true,
                Role::EncryptionControl,
            ),
            (
                part(
                    "application/octet-stream",
                    Some("encrypted.asc"),
                    None,
                    b"-----BEGIN PGP MESSAGE-----",
                ),
                true,
                Role::Encrypted(SignatureKind::Pgp),
            ),
            (
                part("application/octet-stream", Some("data.bin"), None, b"xx"),
                false,
                Role::File,
            ),
            (
                part("application/pkcs7-mime", Some("smime.p7m"), None, b"x"),
                false,
                Role::Encrypted(SignatureKind::Smime),
            ),
            (
                part(
                    "image/png",
                    Some("image001.png"),
                    Some("image001.png@01d9"),
                    &big,
                ),
                false,
                Role::BodyImage,
            ),
            (
                part("image/png", Some("px.png"), Some("px"), &pixel),
                false,
                Role::TinyImage,
            ),
            // an inline image nothing references: the customer's file
            (
                part("image/png", Some("photo.png"), Some("other@x"), &big),
                false,
                Role::File,
            ),
            (
                part("image/png", Some("photo.png"), None, &big),
                false,
                Role::File,
            ),
            (
                part("text/plain", Some("ATT00001.txt"), None, b"footer"),
                false,
                Role::ClientFooter,
            ),
            (
                part("text/html", Some("ATT00002.htm"), None, b"<p>footer"),
                false,
                Role::ClientFooter,
            ),
            (
                part("text/plain", Some("ATT1.txt"), None, b"notes"),
                false,
                Role::File,
            ),
            (
                part("text/x-vcard", Some("jane.vcf"), None, vcard),
                false,
                Role::ContactCard {
                    name: Some("Jane Doe".into()),
                },
            ),
            (
                part("text/calendar", Some("invite.ics"), None, ics),
                false,
                Role::Invitation(Invitation {
                    summary: Some("Demo of the new portal".into()),
                    start: Some("2026-12-05 14:00 UTC".into()),
                    end: Some("2026-12-05 15:00 UTC".into()),
                    location: Some("Room 2".into()),
                }),
            ),
            (
                part("application/pdf", Some("invoice.pdf"), None, b"%PDF-1.4"),
                false,
                Role::File,
            ),
            (
                part("application/x-msdownload", Some("setup.exe"), None, b"MZ"),
                false,
                Role::File,
            ),
        ];
        for (p, encrypted, want) in table {
            assert_eq!(
                role_of(&p, &cids, encrypted),
                want,
                "{:?} {:?}",
                p.declared_type,
                p.raw_name
            );
        }
    }

    #[test]
    fn cid_references_are_found_in_any_quoting_and_case() {
        let html =
            r#"<img src="cid:a@b"> <img src='CID:Second%20One'> url(cid:third) <a href="x">"#;
        assert_eq!(cids_in_html(html), ["a@b", "second one", "third"]);
    }

    #[test]
    fn image_sizes_are_read_from_png_gif_and_jpeg_headers() {
        assert_eq!(image_size(&png(3, 2)), Some((3, 2)));
        assert_eq!(image_size(b"GIF89a\x01\x00\x01\x00\x80\x00"), Some((1, 1)));
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00,
            0x20, 0x00, 0x40, 0x03, 0x00, 0x00, 0x00,
        ];
        assert_eq!(image_size(&jpeg), Some((64, 32)));
        assert_eq!(image_size(b"not an image"), None);
    }

    #[test]
    fn invitation_times_read_as_people_write_them() {
        assert_eq!(ical_time("20261205T140000Z"), "2026-12-05 14:00 UTC");
        assert_eq!(ical_time("20261205T140000"), "2026-12-05 14:00");
        assert_eq!(ical_time("20261205"), "2026-12-05");
        assert_eq!(ical_time("soon"), "soon");
    }
}
