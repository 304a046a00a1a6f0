//! The files of a message, found in its MIME tree: attachments, inline
//! parts, files inside attached messages (up to a depth), TNEF
//! (`winmail.dat`) contents and uuencoded blocks, each with its decoded
//! bytes and the name and type it declares. What the gate then decides of
//! each is the parent module's job.

use std::borrow::Cow;

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use super::{roles, sniff, tnef, uuencode};

/// Nested messages are followed this deep; a deeper one is itself a file.
pub const MAX_MESSAGE_DEPTH: usize = 8;

/// One file found in a message, with its decoded bytes.
#[derive(Debug, Clone)]
pub struct FilePart<'a> {
    /// 1-based position among the message's files, in MIME order; names
    /// the file (`attachment-3.png`) when it has no usable name.
    pub index: usize,
    /// The name as the mail gives it, decoded (RFC 2231 including
    /// continuations, encoded words), not yet sanitised.
    pub raw_name: Option<String>,
    /// `type/subtype`, lower case, as the part declares it (`text/plain`
    /// when it declares nothing, per RFC 2045).
    pub declared_type: String,
    /// Shown in the body (Content-Disposition inline, or an inline image).
    pub inline: bool,
    pub bytes: Cow<'a, [u8]>,
    /// The transfer encoding was broken (bad base64/quoted-printable):
    /// `bytes` are then the raw encoded text, not the file.
    pub malformed: bool,
    /// Its `Content-ID`, lower case, without the angle brackets: how the
    /// HTML body shows it (`cid:`).
    pub content_id: Option<String>,
    /// Where the file was found.
    pub origin: Origin,
}

/// Where a file was found: a MIME part, or decoded out of one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    #[default]
    Mime,
    /// A file inside a `winmail.dat` (TNEF).
    Tnef,
    /// The body a `winmail.dat` carries (`body.rtf`, `body.html`,
    /// `body.txt`): part of the message, not a file the customer
    /// attached, so it is gated quietly (see [`check_body_part`]).
    TnefBody,
    /// A uuencoded block (`begin 644 name` … `end`) of a text body, or
    /// an `x-uuencode` part.
    Uuencoded,
}

/// Every file of a message: attachments and inline parts (images
/// included), those of nested `message/rfc822` parts too, in MIME order.
/// The body's text and HTML parts are not files, but the uuencoded
/// blocks of its text parts are (after the MIME files). A TNEF part
/// (`winmail.dat`) that decodes gives the files inside it instead (those
/// of the messages it embeds too, [`MAX_MESSAGE_DEPTH`] deep) and its
/// body; one that does not stays one file, which [`check`] refuses.
pub fn file_parts<'a>(msg: &'a Message<'a>) -> Vec<FilePart<'a>> {
    let mut out = Vec::new();
    collect(msg, 0, &mut out);
    for &id in &msg.text_body {
        if let Some(PartType::Text(text)) = msg.parts.get(id as usize).map(|p| &p.body) {
            for block in uuencode::find_blocks(text) {
                let (bytes, malformed) = match block.file {
                    Ok(file) => (file, false),
                    Err(_) => (text.as_bytes()[block.range].to_vec(), true),
                };
                out.push(FilePart {
                    index: out.len() + 1,
                    raw_name: (!block.name.is_empty()).then_some(block.name),
                    declared_type: "application/octet-stream".into(),
                    inline: false,
                    bytes: Cow::Owned(bytes),
                    malformed,
                    content_id: None,
                    origin: Origin::Uuencoded,
                });
            }
        }
    }
    out
}

/// Adds `part` to `out`, or what it holds: the files and body of a TNEF
/// part that decodes (an embedded message in turn, while `depth` allows),
/// the file of an `x-uuencode` part.
fn push_file<'a>(mut part: FilePart<'a>, depth: usize, out: &mut Vec<FilePart<'a>>) {
    if !part.malformed
        && depth < MAX_MESSAGE_DEPTH
        && is_tnef_labelled(&part)
        && let Ok(t) = tnef::decode(&part.bytes)
    {
        for f in t.files {
            let declared_type = if f.embedded_message {
                "application/ms-tnef".to_string()
            } else {
                f.mime_type
                    .unwrap_or_else(|| "application/octet-stream".into())
            };
            let inner = FilePart {
                index: 0,
                raw_name: f.name,
                declared_type,
                inline: f.inline,
                bytes: Cow::Owned(f.bytes),
                malformed: false,
                content_id: f.content_id.map(|c| c.to_ascii_lowercase()),
                origin: Origin::Tnef,
            };
            push_file(inner, depth + 1, out);
        }
        for b in t.bodies {
            out.push(FilePart {
                index: out.len() + 1,
                raw_name: Some(b.file_name().to_string()),
                declared_type: b.mime_type().to_string(),
                inline: true,
                bytes: Cow::Owned(b.bytes),
                malformed: false,
                content_id: None,
                origin: Origin::TnefBody,
            });
        }
        return;
    }
    if !part.malformed
        && let Some(block) = uuencode::decode_part(&part.bytes)
    {
        match block.file {
            Ok(file) => {
                part.bytes = Cow::Owned(file);
                part.origin = Origin::Uuencoded;
                if part.raw_name.is_none() && !block.name.is_empty() {
                    part.raw_name = Some(block.name);
                }
            }
            Err(_) => part.malformed = true,
        }
    }
    part.index = out.len() + 1;
    out.push(part);
}

/// Declared or recognised as TNEF.
pub(super) fn is_tnef_labelled(part: &FilePart<'_>) -> bool {
    matches!(
        part.declared_type.as_str(),
        "application/ms-tnef" | "application/vnd.ms-tnef"
    ) || part
        .raw_name
        .as_deref()
        .is_some_and(|n| n.trim().eq_ignore_ascii_case("winmail.dat"))
        || sniff::is_tnef(&part.bytes)
}

/// The `cid:` references of the message's HTML body parts (see
/// [`roles::role_of`]), and of the HTML body a `winmail.dat` carries
/// (whose images are files inside it).
pub fn body_cids(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for &id in &msg.html_body {
        if let Some(PartType::Html(html)) = msg.parts.get(id as usize).map(|p| &p.body) {
            out.extend(roles::cids_in_html(html));
        }
    }
    for &id in &msg.attachments {
        if let Some(PartType::Binary(b) | PartType::InlineBinary(b)) =
            msg.parts.get(id as usize).map(|p| &p.body)
            && b.starts_with(&tnef::SIGNATURE)
            && let Ok(t) = tnef::decode(b)
        {
            for body in t.bodies.iter().filter(|b| b.kind == tnef::BodyKind::Html) {
                out.extend(roles::cids_in_html(&String::from_utf8_lossy(&body.bytes)));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether the message is a `multipart/encrypted` (PGP/MIME).
pub fn is_encrypted(msg: &Message<'_>) -> bool {
    msg.parts
        .first()
        .and_then(|p| p.content_type())
        .is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("encrypted"))
        })
}

fn collect<'a>(msg: &'a Message<'a>, depth: usize, out: &mut Vec<FilePart<'a>>) {
    for &id in &msg.attachments {
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        let bytes: Cow<'a, [u8]> = match &part.body {
            PartType::Multipart(_) => continue,
            PartType::Message(nested) if depth < MAX_MESSAGE_DEPTH => {
                collect(nested, depth + 1, out);
                continue;
            }
            PartType::Message(nested) => Cow::Borrowed(nested.raw_message()),
            PartType::Binary(b) | PartType::InlineBinary(b) => Cow::Borrowed(b.as_ref()),
            PartType::Text(t) | PartType::Html(t) => original_text_bytes(msg, part, t),
        };
        let file = FilePart {
            index: out.len() + 1,
            raw_name: continued_name(msg, part)
                .or_else(|| part.attachment_name().map(str::to_string))
                .or_else(|| name_after_fold(msg, part)),
            declared_type: declared_type(part),
            inline: is_inline(part),
            bytes,
            malformed: part.is_encoding_problem,
            content_id: part.content_id().map(|c| {
                c.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_ascii_lowercase()
            }),
            origin: Origin::Mime,
        };
        push_file(file, depth, out);
    }
}

/// The part's raw header block, unfolded.
fn raw_headers<'a>(msg: &'a Message<'_>, part: &MessagePart<'_>) -> Option<Cow<'a, str>> {
    let head = msg
        .raw_message()
        .get(part.offset_header as usize..part.offset_body as usize)?;
    Some(String::from_utf8_lossy(head))
}

/// RFC 2231 continuations (`filename*0*=ISO-2022-JP''...; filename*1*=...`)
/// must be joined *before* the charset is decoded: a multi-byte character
/// or an ISO-2022 escape state may span segments. mail-parser 0.11 decodes
/// each segment alone, so continued names are reassembled here.
fn continued_name(msg: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    let head = raw_headers(msg, part)?;
    ["filename", "name"]
        .into_iter()
        .find_map(|param| join_rfc2231(&head, param))
}

fn join_rfc2231(head: &str, param: &str) -> Option<String> {
    let lower = head.to_ascii_lowercase();
    let key = format!("{param}*");
    let mut segments: Vec<(u32, bool, &str)> = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find(&key) {
        let start = from + found;
        from = start + key.len();
        // Only a whole parameter name: preceded by `;` or whitespace.
        if !lower[..start].trim_end().ends_with(';') {
            continue;
        }
        let rest = &head[from..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(n) = rest[..digits].parse::<u32>() else {
            continue;
        };
        let rest = &rest[digits..];
        let (extended, rest) = match rest.strip_prefix('*') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(rest) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let value = match rest.strip_prefix('"') {
            Some(q) => &q[..q.find('"').unwrap_or(q.len())],
            None => {
                let end = rest
                    .find([';', ' ', '\t', '\r', '\n'])
                    .unwrap_or(rest.len());
                &rest[..end]
            }
        };
        if segments.len() >= 1000 {
            return None;
        }
        segments.push((n, extended, value));
    }
    if segments.is_empty() || segments.iter().all(|s| s.0 != 0) {
        return None;
    }
    segments.sort_by_key(|s| s.0);
    segments.dedup_by_key(|s| s.0);
    let mut charset = "";
    let mut bytes = Vec::new();
    for (i, (n, extended, value)) in segments.into_iter().enumerate() {
        if n as usize != i {
            break; // a gap: RFC 2231 says stop at the first missing number
        }
        let mut value = value;
        if n == 0 && extended {
            let mut pieces = value.splitn(3, '\'');
            if let (Some(cs), Some(_lang), Some(v)) = (pieces.next(), pieces.next(), pieces.next())
            {
                charset = cs;
                value = v;
            }
        }
        if extended {
            percent_decode(value, &mut bytes);
        } else {
            bytes.extend_from_slice(value.as_bytes());
        }
    }
    let decoded = match mail_parser::decoders::charsets::map::charset_decoder(charset.as_bytes()) {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    };
    (!decoded.is_empty()).then_some(decoded)
}

fn percent_decode(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("x"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
}

/// Outlook folds right after `filename=` (`filename=\r\n\t"=?iso...?="`),
/// which mail-parser 0.11 reads as an empty name. Unfold those headers and
/// let mail-parser decode them again (RFC 2231, encoded words).
fn name_after_fold(msg: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    let head = raw_headers(msg, part)?;
    if !head.contains("name=") {
        return None;
    }
    let mut unfolded = String::with_capacity(head.len() + 2);
    let mut rest: &str = &head;
    while let Some(i) = rest.find('=') {
        unfolded.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let folded = rest.trim_start_matches(['\r', '\n']);
        if folded.len() < rest.len() && folded.starts_with([' ', '\t']) {
            unfolded.push(' ');
            rest = folded.trim_start_matches([' ', '\t']);
        }
    }
    unfolded.push_str(rest);
    // RFC 2047 6.2: space between two encoded words is not part of the text.
    let mut joined = String::with_capacity(unfolded.len());
    let mut rest: &str = &unfolded;
    while let Some(i) = rest.find("?=") {
        joined.push_str(&rest[..i + 2]);
        rest = &rest[i + 2..];
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if trimmed.starts_with("=?") {
            rest = trimmed;
        }
    }
    joined.push_str(rest);
    let mut unfolded = joined;
    unfolded.push_str("\r\n");
    let reparsed = mail_parser::MessageParser::default().parse(unfolded.as_bytes())?;
    reparsed.root_part().attachment_name().map(str::to_string)
}

/// mail-parser hands text parts over converted to UTF-8 from their
/// charset; the customer's file is the bytes before that conversion, so
/// decode the transfer encoding again from the raw message.
fn original_text_bytes<'a>(
    msg: &'a Message<'a>,
    part: &MessagePart<'a>,
    text: &'a str,
) -> Cow<'a, [u8]> {
    use mail_parser::Encoding;
    use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};
    let raw = msg
        .raw_message()
        .get(part.offset_body as usize..part.offset_end as usize);
    let decoded = match (raw, part.encoding) {
        (Some(raw), Encoding::None) => Some(Cow::Borrowed(raw)),
        (Some(raw), Encoding::Base64) => base64_decode(raw).map(Cow::Owned),
        (Some(raw), Encoding::QuotedPrintable) => quoted_printable_decode(raw).map(Cow::Owned),
        (None, _) => None,
    };
    decoded.unwrap_or(Cow::Borrowed(text.as_bytes()))
}

fn declared_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "text/plain".to_string(),
    }
}

fn is_inline(part: &MessagePart<'_>) -> bool {
    match part.content_disposition() {
        Some(d) => d.ctype().eq_ignore_ascii_case("inline"),
        None => matches!(part.body, PartType::InlineBinary(_)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2231_continuations_are_joined_before_charset_decoding() {
        let cases = [
            // A UTF-8 character split across two segments.
            (
                "Content-Disposition: attachment;\r\n filename*0*=UTF-8''%E6%96%B0%E3;\r\n filename*1*=%81%97.txt\r\n",
                "filename",
                Some("新し.txt"),
            ),
            // Mixed extended and plain segments, out of order.
            (
                "Content-Type: x/y;\r\n name*1=\"part two.pdf\";\r\n name*0*=iso-8859-1'fr'r%E9sum%E9%20\r\n",
                "name",
                Some("résumé part two.pdf"),
            ),
            // A gap stops the name at the last contiguous segment.
            (
                "X: a; filename*0=\"ab\"; filename*2=\"cd\"\r\n",
                "filename",
                Some("ab"),
            ),
            // No continuation: left to mail-parser.
            ("X: a; filename=\"plain.txt\"\r\n", "filename", None),
            ("X: a; filename*=UTF-8''single.txt\r\n", "filename", None),
            // Another parameter whose name ends the same way is not ours.
            ("X: a; xfilename*0=\"no\"\r\n", "filename", None),
        ];
        for (head, param, want) in cases {
            assert_eq!(join_rfc2231(head, param).as_deref(), want, "{head:?}");
        }
    }
}
