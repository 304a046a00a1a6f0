//! The attachment policy of SPEC.md "Attachments": which parts of a mail
//! are files, and for each file the verdict of steps 1–4 in SPEC order
//! (enabled, size, extension, content). Step 5, the antivirus, needs a
//! socket: the caller runs [`crate::adapters::clamd`] on the files this
//! module accepts and records its outcome as [`Refusal::Infected`] or
//! [`Refusal::NotScanned`].
//!
//! TNEF (`winmail.dat`): the crates.io readers were tried on MimeKit's 19
//! TNEF streams. `tnef` 0.1.1 errors on 8 of them and silently drops the
//! attached files of 5 more (it skips any attachment lacking one of six
//! attributes); `ytnef` binds libytnef, a GPL-2.0 C library. Neither is
//! usable, so [`tnef`] reads them: [`file_parts`] replaces a TNEF part by
//! the files inside it (and its body, see [`Origin::TnefBody`]), each
//! gated like any other; one that does not decode stays one file, refused
//! as [`Refusal::Tnef`] with the reason. uuencoded files ([`uuencode`]),
//! pasted into a text body or sent as an `x-uuencode` part, are decoded
//! and gated the same way.

use std::borrow::Cow;

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use crate::settings::{AttachmentSettings, Language};

pub mod archive;
mod filename;
pub mod roles;
mod sniff;
pub mod tnef;
pub mod uuencode;

pub use filename::{MAX_NAME_BYTES, extension_of, sanitize_filename};

use archive::{DANGEROUS_EXTENSIONS, ZipProblem, inspect_zip};
use sniff::{Facts, OLE_MAGIC, OleKind, TextVerdict};

/// Nested messages are followed this deep; a deeper one is itself a file.
const MAX_MESSAGE_DEPTH: usize = 8;

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
fn is_tnef_labelled(part: &FilePart<'_>) -> bool {
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

/// The settings the policy reads.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub enabled: bool,
    pub max_size_bytes: u64,
    /// Lower case, no leading dot (as [`AttachmentSettings`] holds them).
    pub allowed_extensions: &'a [String],
}

impl<'a> From<&'a AttachmentSettings> for Policy<'a> {
    fn from(s: &'a AttachmentSettings) -> Self {
        Policy {
            enabled: s.enabled,
            max_size_bytes: s.max_size_bytes(),
            allowed_extensions: &s.allowed_extensions,
        }
    }
}

/// Why a file was refused. [`Refusal::code`] is the stable id for metrics
/// and JSON; [`Refusal::explain`] the sentence for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Disabled,
    /// The transfer encoding (base64, quoted-printable) is broken.
    Undecodable,
    TooLarge {
        size: u64,
        limit: u64,
    },
    ExtensionNotAllowed {
        extension: String,
    },
    NoExtension,
    ContentMismatch {
        extension: String,
        sniffed: String,
    },
    Executable {
        what: String,
    },
    ArchiveHoldsExecutable {
        entry: String,
    },
    /// Too many entries or too much expansion: a zip bomb, or close to one.
    ArchiveTooLarge,
    /// An archive we cannot look inside (encrypted, damaged, or a format
    /// other than zip).
    UnreadableArchive,
    /// A `winmail.dat` (TNEF) that could not be read: why.
    Tnef {
        why: String,
    },
    Infected {
        signature: String,
    },
    NotScanned {
        why: String,
    },
    /// The message carried more files than `attachments.max_files`.
    TooMany {
        limit: u32,
    },
}

impl Refusal {
    /// Step 5 of the policy, from the antivirus's answer: `None` for a
    /// clean file; a scanner that did not answer refuses (fail closed).
    pub fn from_scan(outcome: &crate::domain::ScanOutcome) -> Option<Refusal> {
        use crate::domain::ScanOutcome;
        match outcome {
            ScanOutcome::Clean => None,
            ScanOutcome::Infected(signature) => Some(Refusal::Infected {
                signature: signature.clone(),
            }),
            ScanOutcome::Failed(why) => Some(Refusal::NotScanned { why: why.clone() }),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Disabled => "disabled",
            Refusal::Undecodable => "undecodable",
            Refusal::TooLarge { .. } => "too_large",
            Refusal::ExtensionNotAllowed { .. } => "extension_not_allowed",
            Refusal::NoExtension => "no_extension",
            Refusal::ContentMismatch { .. } => "content_mismatch",
            Refusal::Executable { .. } => "executable",
            Refusal::ArchiveHoldsExecutable { .. } => "archive_holds_executable",
            Refusal::ArchiveTooLarge => "archive_too_large",
            Refusal::UnreadableArchive => "unreadable_archive",
            Refusal::Tnef { .. } => "tnef",
            Refusal::Infected { .. } => "infected",
            Refusal::NotScanned { .. } => "not_scanned",
            Refusal::TooMany { .. } => "too_many_files",
        }
    }

    /// One sentence for the sender, in the helpdesk's language. It does not
    /// name the file (the caller lists files) nor repeat the accepted
    /// types (the mail shows them once).
    pub fn explain(&self, lang: Language) -> String {
        let fr = lang == Language::Fr;
        match self {
            Refusal::TooMany { limit } => {
                if fr {
                    format!(
                        "Le message contenait plus de {limit} fichiers : les suivants n'ont pas été examinés."
                    )
                } else {
                    format!(
                        "The message carried more than {limit} files: the ones after those were not examined."
                    )
                }
            }
            Refusal::Disabled => {
                if fr {
                    "Ce support n'accepte pas de pièces jointes.".into()
                } else {
                    "This helpdesk does not accept attachments.".into()
                }
            }
            Refusal::Undecodable => {
                if fr {
                    "Le fichier est arrivé abîmé (encodage base64, quoted-printable ou uuencode invalide) et n'a pas pu être lu.".into()
                } else {
                    "The file arrived damaged (invalid base64, quoted-printable or uuencode encoding) and could not be read.".into()
                }
            }
            Refusal::TooLarge { size, limit } => {
                if fr {
                    format!(
                        "Le fichier fait {}, au-delà de la limite de {} par fichier.",
                        mib(*size, fr),
                        mib(*limit, fr)
                    )
                } else {
                    format!(
                        "The file is {}, over the limit of {} per file.",
                        mib(*size, fr),
                        mib(*limit, fr)
                    )
                }
            }
            Refusal::ExtensionNotAllowed { extension } => {
                if fr {
                    format!("Les fichiers .{extension} ne sont pas acceptés.")
                } else {
                    format!("Files of type .{extension} are not accepted.")
                }
            }
            Refusal::NoExtension => {
                if fr {
                    "Le nom du fichier n'a pas d'extension, son type ne peut donc pas être vérifié."
                        .into()
                } else {
                    "The file name has no extension, so its type cannot be checked.".into()
                }
            }
            Refusal::ContentMismatch { extension, sniffed } => {
                if fr {
                    format!(
                        "Le fichier porte l'extension .{extension} mais son contenu est d'un autre type ({sniffed})."
                    )
                } else {
                    format!(
                        "The file is named .{extension} but its content is something else ({sniffed})."
                    )
                }
            }
            Refusal::Executable { what } => {
                if fr {
                    format!(
                        "Le fichier est un programme ou un script ({what}) : ils ne sont jamais acceptés."
                    )
                } else {
                    format!("The file is a program or a script ({what}); these are never accepted.")
                }
            }
            Refusal::ArchiveHoldsExecutable { entry } => {
                if fr {
                    format!(
                        "L'archive contient un programme ou un script ({entry}) : ils ne sont jamais acceptés."
                    )
                } else {
                    format!(
                        "The archive holds a program or a script ({entry}); these are never accepted."
                    )
                }
            }
            Refusal::ArchiveTooLarge => {
                if fr {
                    "L'archive contient trop de fichiers ou se décompresse en une taille démesurée."
                        .into()
                } else {
                    "The archive holds too many files or expands to an unreasonable size.".into()
                }
            }
            Refusal::UnreadableArchive => {
                if fr {
                    "Le contenu de l'archive ne peut pas être vérifié (archive chiffrée, abîmée ou d'un format autre que zip).".into()
                } else {
                    "The archive's content cannot be checked (it is encrypted, damaged, or not a zip).".into()
                }
            }
            Refusal::Tnef { why } => {
                if fr {
                    format!(
                        "Outlook a envoyé ce fichier au format winmail.dat (TNEF), mais il est illisible ({why}) : renvoyez le message au format HTML ou texte brut."
                    )
                } else {
                    format!(
                        "Outlook sent this as winmail.dat (TNEF), but it cannot be read ({why}): please resend the message in HTML or plain text format."
                    )
                }
            }
            Refusal::Infected { signature } => {
                if fr {
                    format!("L'antivirus a détecté {signature} dans le fichier.")
                } else {
                    format!("The antivirus found {signature} in the file.")
                }
            }
            Refusal::NotScanned { .. } => {
                if fr {
                    "Le fichier n'a pas pu être analysé par l'antivirus ; renvoyez-le plus tard."
                        .into()
                } else {
                    "The file could not be scanned by the antivirus; please send it again later."
                        .into()
                }
            }
        }
    }
}

/// `5 MiB`, `7.3 MiB`, `512 KiB`; decimal comma in French.
fn mib(bytes: u64, fr: bool) -> String {
    const MIB: u64 = 1024 * 1024;
    let s = if bytes >= MIB {
        if bytes.is_multiple_of(MIB) {
            format!("{} Mio", bytes / MIB)
        } else {
            format!("{:.1} Mio", bytes as f64 / MIB as f64)
        }
    } else {
        format!("{} Kio", bytes.div_ceil(1024))
    };
    if fr {
        s.replace('.', ",")
    } else {
        s.replace("Mio", "MiB").replace("Kio", "KiB")
    }
}

/// The verdict on one file, and what the caller records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Sanitised: safe to show and to offer for download.
    pub filename: String,
    /// The extension judged: the last one of the name, lower case; for a
    /// part without a name, the one of its declared type.
    pub extension: Option<String>,
    /// Decoded size in bytes.
    pub size: u64,
    pub declared_type: String,
    /// What the bytes are, when we can tell.
    pub sniffed_type: Option<String>,
    /// `None`: accepted (subject to the antivirus).
    pub refusal: Option<Refusal>,
    /// An image of the message's body (`cid:`), not a file the customer
    /// attached: its refusal is never told to the customer.
    pub body_image: bool,
    /// The part's `Content-ID` (lower case, without `<>`) when it is a
    /// body image: the HTML shows it by `cid:`.
    pub content_id: Option<String>,
}

impl Checked {
    /// Refused, and the customer is to be told (a file they attached).
    pub fn refused_loudly(&self) -> bool {
        self.refusal.is_some() && !self.body_image
    }
}

/// A part of the message's body gated as a file, quietly: a body image
/// (see [`roles`]), which must be an image by its content, or the body a
/// `winmail.dat` carries ([`Origin::TnefBody`]), under the file policy.
pub fn check_body_part(policy: &Policy, part: &FilePart) -> Checked {
    let mut c = check(policy, part);
    c.body_image = true;
    c.content_id = part.content_id.clone();
    if part.origin == Origin::TnefBody {
        return c;
    }
    if c.refusal.is_none()
        && !c
            .sniffed_type
            .as_deref()
            .is_some_and(|t| t.starts_with("image/"))
    {
        c.refusal = Some(Refusal::ContentMismatch {
            extension: c.extension.clone().unwrap_or_default(),
            sniffed: c.sniffed_type.clone().unwrap_or_else(|| "unknown".into()),
        });
    }
    c
}

/// Steps 1–4 of SPEC "Attachments", in order; the first failing step is
/// the verdict. A TNEF part is refused right after the size step: its
/// `.dat` extension would otherwise give a misleading reason.
/// A file past the message's limit of `limit` files: named and sized, its
/// content never examined (a mail with 10,000 parts costs 10,000 names,
/// not 10,000 scans), refused as one too many.
pub fn refuse_as_too_many(part: &FilePart, limit: u32) -> Checked {
    let named = part.raw_name.as_deref().and_then(filename::clean_name);
    let (filename, extension) = match named {
        Some(name) => {
            let ext = extension_of(&name);
            (name, ext)
        }
        None => {
            let ext = extension_for_type(&part.declared_type);
            (
                filename::fallback_name(part.index, ext),
                ext.map(str::to_string),
            )
        }
    };
    Checked {
        filename,
        extension,
        size: part.bytes.len() as u64,
        declared_type: part.declared_type.clone(),
        sniffed_type: None,
        refusal: Some(Refusal::TooMany { limit }),
        body_image: false,
        content_id: None,
    }
}

pub fn check(policy: &Policy, part: &FilePart) -> Checked {
    let bytes: &[u8] = &part.bytes;
    let facts = Facts::new(bytes);
    let size = bytes.len() as u64;
    let too_large = size > policy.max_size_bytes;
    // A file past the limit is only glanced at (its start), never scanned.
    let sniffed_type = if too_large || part.malformed {
        sniff_head(bytes)
    } else {
        sniff_type(&facts)
    };
    let named = part.raw_name.as_deref().and_then(filename::clean_name);
    let (filename, extension) = match named {
        Some(name) => {
            let ext = extension_of(&name);
            (name, ext)
        }
        None => {
            let ext = extension_for_type(&part.declared_type)
                .or_else(|| sniffed_type.as_deref().and_then(extension_for_type));
            (
                filename::fallback_name(part.index, ext),
                ext.map(str::to_string),
            )
        }
    };
    let refusal = if !policy.enabled {
        Some(Refusal::Disabled)
    } else if part.malformed {
        Some(Refusal::Undecodable)
    } else if too_large {
        Some(Refusal::TooLarge {
            size,
            limit: policy.max_size_bytes,
        })
    } else if is_tnef(part, &filename) {
        Some(Refusal::Tnef {
            why: match tnef::decode(bytes) {
                Err(e) => e.to_string(),
                Ok(_) => format!("messages embedded more than {MAX_MESSAGE_DEPTH} deep"),
            },
        })
    } else {
        match &extension {
            None => Some(Refusal::NoExtension),
            Some(ext) if !policy.allowed_extensions.iter().any(|a| a == ext) => {
                Some(Refusal::ExtensionNotAllowed {
                    extension: ext.clone(),
                })
            }
            Some(ext) => content_refusal(ext, &facts, sniffed_type.as_deref()),
        }
    };
    Checked {
        filename,
        extension,
        size,
        declared_type: part.declared_type.clone(),
        sniffed_type,
        refusal,
        body_image: false,
        content_id: None,
    }
}

fn is_tnef(part: &FilePart, filename: &str) -> bool {
    is_tnef_labelled(part) || filename.eq_ignore_ascii_case("winmail.dat")
}

/// What the bytes are, as a MIME type: programs first (by our stricter
/// tests), OLE by its streams, then infer, then "is it text at all".
fn sniff_type(facts: &Facts) -> Option<String> {
    let bytes = facts.bytes;
    if let Some(what) = facts.program() {
        return Some(program_mime(what).to_string());
    }
    if bytes.starts_with(OLE_MAGIC) {
        return Some(facts.ole().mime().to_string());
    }
    if let Some(mime) = facts.infer().filter(|m| !is_weak_magic(m)) {
        return Some(mime.to_string());
    }
    if sniff::is_pdf(bytes) {
        return Some("application/pdf".into());
    }
    match facts.text() {
        TextVerdict::Text => Some("text/plain".into()),
        TextVerdict::Active(what) => Some(program_mime(what).to_string()),
        TextVerdict::Binary => None,
    }
}

/// The type of a file we will not read in full (too large, undecodable).
fn sniff_head(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    if head.starts_with(OLE_MAGIC) {
        return Some("application/x-ole-storage".into());
    }
    if let Some(what) = sniff::program(head) {
        return Some(program_mime(what).to_string());
    }
    infer::get(head)
        .filter(|t| !is_weak_magic(t.mime_type()))
        .map(|t| t.mime_type().to_string())
}

/// infer types whose magic is two or three printable bytes ("BC", "0\x82")
/// and so match ordinary text; never trusted over the text test.
fn is_weak_magic(mime: &str) -> bool {
    matches!(
        mime,
        "application/x-llvm" | "application/x-x509-ca-cert" | "application/vnd.android.dey"
    ) || mime.starts_with("text/")
}

fn program_mime(what: &str) -> &'static str {
    match what {
        "PE" => "application/vnd.microsoft.portable-executable",
        "ELF" => "application/x-executable",
        "Mach-O" => "application/x-mach-binary",
        "Java class" => "application/java",
        "DEX" => "application/vnd.android.dex",
        "WebAssembly" => "application/wasm",
        "LNK" => "application/x-ms-shortcut",
        "MSI" => "application/x-msi",
        "HTML" => "text/html",
        "batch script" => "application/x-bat",
        "server script (PHP/ASP)" => "application/x-httpd-php",
        _ => "text/x-shellscript",
    }
}

/// The extension a nameless part is judged by, from its declared (or
/// sniffed) type: mail clients leave inline images unnamed.
fn extension_for_type(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/bmp" => "bmp",
        "image/tiff" => "tiff",
        "image/heif" | "image/heic" => "heic",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/csv" => "csv",
        "text/calendar" => "ics",
        "text/html" => "html",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/zip" => "zip",
        "message/rfc822" => "eml",
        _ => return None,
    })
}

/// What an extension promises about the bytes.
enum Expect {
    /// Text, neither HTML nor script.
    Text,
    /// One of these infer MIME types.
    Mime(&'static [&'static str]),
    /// Any infer type of this top-level family (`video/`, `audio/`).
    Family(&'static str),
    Pdf,
    Rtf,
    Svg,
    /// Old Office; `.doc` also accepts RTF, which Word saves under it.
    Ole(fn(OleKind) -> bool, bool),
    /// OOXML: a zip with `[Content_Types].xml` and this top folder.
    Ooxml(&'static str),
    /// OpenDocument: infer's type for it (read from the `mimetype` entry).
    Odf(&'static str),
    Zip,
    /// An archive format we cannot list: never accepted.
    Opaque(&'static [&'static str]),
    /// Not known here: nothing to compare against.
    Unknown,
}

fn expectation(ext: &str) -> Expect {
    use Expect::*;
    match ext {
        "txt" | "text" | "log" | "csv" | "tsv" | "json" | "xml" | "sql" | "md" | "ini" | "cfg"
        | "conf" | "yaml" | "yml" | "ics" | "vcf" | "eml" | "diff" | "patch" => Text,
        "jpg" | "jpeg" | "jpe" | "jfif" => Mime(&["image/jpeg"]),
        "png" => Mime(&["image/png"]),
        "gif" => Mime(&["image/gif"]),
        "webp" => Mime(&["image/webp"]),
        "bmp" => Mime(&["image/bmp"]),
        "tif" | "tiff" => Mime(&["image/tiff"]),
        "heic" | "heif" => Mime(&["image/heif", "image/avif"]),
        "avif" => Mime(&["image/avif"]),
        "ico" => Mime(&["image/vnd.microsoft.icon"]),
        "psd" => Mime(&["image/vnd.adobe.photoshop"]),
        "mp3" | "wav" | "ogg" | "oga" | "flac" | "m4a" | "aac" | "opus" | "amr" => Family("audio/"),
        "mp4" | "m4v" | "mov" | "avi" | "mkv" | "webm" | "wmv" | "mpg" | "mpeg" | "3gp" => {
            Family("video/")
        }
        "pdf" => Pdf,
        "rtf" => Rtf,
        "svg" => Svg,
        "doc" | "dot" => Ole(|k| matches!(k, OleKind::Word { .. }), true),
        "xls" | "xlt" => Ole(|k| matches!(k, OleKind::Excel { .. }), false),
        "ppt" | "pps" | "pot" => Ole(|k| matches!(k, OleKind::PowerPoint { .. }), false),
        "docx" | "dotx" => Ooxml("word/"),
        "xlsx" | "xltx" => Ooxml("xl/"),
        "pptx" | "ppsx" | "potx" => Ooxml("ppt/"),
        "odt" => Odf("application/vnd.oasis.opendocument.text"),
        "ods" => Odf("application/vnd.oasis.opendocument.spreadsheet"),
        "odp" => Odf("application/vnd.oasis.opendocument.presentation"),
        "zip" => Zip,
        "rar" => Opaque(&["application/vnd.rar"]),
        "7z" => Opaque(&["application/x-7z-compressed"]),
        "gz" | "tgz" => Opaque(&["application/gzip"]),
        "bz2" => Opaque(&["application/x-bzip2"]),
        "xz" => Opaque(&["application/x-xz"]),
        "tar" => Opaque(&["application/x-tar"]),
        "zst" => Opaque(&["application/zstd"]),
        _ => Unknown,
    }
}

/// Step 4: do the bytes agree with the extension, and are they free of
/// programs and scripts?
fn content_refusal(ext: &str, facts: &Facts, sniffed: Option<&str>) -> Option<Refusal> {
    let bytes = facts.bytes;
    let mismatch = || Refusal::ContentMismatch {
        extension: ext.to_string(),
        sniffed: sniffed.unwrap_or("unrecognised binary data").to_string(),
    };
    if let Some(what) = facts.program() {
        return Some(Refusal::Executable {
            what: what.to_string(),
        });
    }
    // Allowed by the admin (with a warning at check time), still a program.
    if DANGEROUS_EXTENSIONS.contains(&ext) {
        return Some(Refusal::Executable {
            what: format!(".{ext}"),
        });
    }
    let infer_mime = || facts.infer();
    match expectation(ext) {
        Expect::Text => match facts.text() {
            TextVerdict::Text => None,
            TextVerdict::Binary => Some(mismatch()),
            TextVerdict::Active(what) => Some(Refusal::Executable {
                what: what.to_string(),
            }),
        },
        Expect::Mime(list) => (!infer_mime().is_some_and(|m| list.contains(&m))).then(mismatch),
        Expect::Family(prefix) => {
            (!infer_mime().is_some_and(|m| m.starts_with(prefix))).then(mismatch)
        }
        Expect::Pdf => (!sniff::is_pdf(bytes)).then(mismatch),
        Expect::Rtf => (!sniff::is_rtf(bytes)).then(mismatch),
        Expect::Svg => svg_refusal(facts).map(|r| r.unwrap_or_else(mismatch)),
        Expect::Ole(right_kind, rtf_ok) => {
            if rtf_ok && sniff::is_rtf(bytes) {
                return None;
            }
            match facts.ole() {
                OleKind::Word { macros: true }
                | OleKind::Excel { macros: true }
                | OleKind::PowerPoint { macros: true } => Some(Refusal::Executable {
                    what: "Office macros".into(),
                }),
                kind if right_kind(kind) => None,
                _ => Some(mismatch()),
            }
        }
        Expect::Ooxml(folder) => {
            if !bytes.starts_with(b"PK\x03\x04") {
                return Some(mismatch());
            }
            let found = inspect_zip(bytes);
            if let Some(problem) = found.problem {
                return Some(zip_refusal(problem, mismatch));
            }
            let is_ooxml = found.names.iter().any(|n| n == "[Content_Types].xml")
                && found.names.iter().any(|n| n.starts_with(folder));
            (!is_ooxml).then(|| Refusal::ContentMismatch {
                extension: ext.to_string(),
                sniffed: "application/zip".into(),
            })
        }
        Expect::Odf(mime) => {
            if infer_mime() != Some(mime) {
                return Some(mismatch());
            }
            inspect_zip(bytes).problem.map(|p| zip_refusal(p, mismatch))
        }
        Expect::Zip => {
            if !infer_mime().is_some_and(|m| {
                m == "application/zip"
                    || m.contains("opendocument")
                    || m.contains("openxmlformats")
                    || m == "application/epub+zip"
            }) {
                return Some(mismatch());
            }
            inspect_zip(bytes)
                .problem
                .map(|p| zip_refusal(p, || Refusal::UnreadableArchive))
        }
        Expect::Opaque(list) => Some(if infer_mime().is_some_and(|m| list.contains(&m)) {
            Refusal::UnreadableArchive
        } else {
            mismatch()
        }),
        Expect::Unknown => match facts.infer().filter(|m| !is_weak_magic(m)) {
            // A recognised type must be the one the extension names.
            Some(_) if !infer::is(bytes, ext) => Some(mismatch()),
            Some(_) => None,
            None => match facts.text() {
                TextVerdict::Active(what) => Some(Refusal::Executable {
                    what: what.to_string(),
                }),
                _ => None,
            },
        },
    }
}

fn zip_refusal(problem: ZipProblem, unreadable: impl FnOnce() -> Refusal) -> Refusal {
    match problem {
        ZipProblem::Holds { entry, what } if what == "Office macros" => Refusal::Executable {
            what: format!("{what}: {entry}"),
        },
        ZipProblem::Holds { entry, .. } => Refusal::ArchiveHoldsExecutable { entry },
        ZipProblem::TooLarge => Refusal::ArchiveTooLarge,
        ZipProblem::Unreadable(_) => unreadable(),
    }
}

/// SVG is XML that browsers run: accepted only as a drawing without
/// scripts, event handlers, `javascript:` links or foreign HTML.
/// `Some(None)`: not an SVG at all (the caller words the mismatch).
fn svg_refusal(facts: &Facts) -> Option<Option<Refusal>> {
    let bytes = facts.bytes;
    if facts.text() == TextVerdict::Binary
        || sniff::find_ci(&bytes[..bytes.len().min(4096)], b"<svg").is_none()
    {
        return Some(None);
    }
    let active = sniff::find_ci(bytes, b"<script").is_some()
        || sniff::find_ci(bytes, b"javascript:").is_some()
        || sniff::find_ci(bytes, b"<foreignobject").is_some()
        || has_event_handler(bytes);
    active.then(|| {
        Some(Refusal::Executable {
            what: "SVG with script".into(),
        })
    })
}

/// ` onload=`, `\tonclick =`... an `on*` attribute anywhere.
fn has_event_handler(bytes: &[u8]) -> bool {
    bytes.windows(3).enumerate().any(|(i, w)| {
        if !(w[0].is_ascii_whitespace() || w[0] == b'/') || !w[1..].eq_ignore_ascii_case(b"on") {
            return false;
        }
        let rest = &bytes[i + 3..];
        let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        letters > 0
            && rest[letters..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|&b| b == b'=')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[String]) -> Policy<'_> {
        Policy {
            enabled: true,
            max_size_bytes: 5 * 1024 * 1024,
            allowed_extensions: allowed,
        }
    }

    fn part(name: Option<&str>, declared: &str, bytes: &[u8]) -> FilePart<'static> {
        FilePart {
            index: 1,
            raw_name: name.map(str::to_string),
            declared_type: declared.to_string(),
            inline: false,
            bytes: Cow::Owned(bytes.to_vec()),
            malformed: false,
            content_id: None,
            origin: Origin::Mime,
        }
    }

    #[test]
    fn codes_are_distinct_and_explanations_differ_by_language() {
        let all = [
            Refusal::Disabled,
            Refusal::Undecodable,
            Refusal::TooLarge {
                size: 7 * 1024 * 1024 + 1,
                limit: 5 * 1024 * 1024,
            },
            Refusal::ExtensionNotAllowed {
                extension: "exe".into(),
            },
            Refusal::NoExtension,
            Refusal::ContentMismatch {
                extension: "jpg".into(),
                sniffed: "application/pdf".into(),
            },
            Refusal::Executable { what: "PE".into() },
            Refusal::ArchiveHoldsExecutable {
                entry: "a.js".into(),
            },
            Refusal::ArchiveTooLarge,
            Refusal::UnreadableArchive,
            Refusal::Tnef {
                why: "the TNEF stream holds no attribute".into(),
            },
            Refusal::Infected {
                signature: "Eicar-Test-Signature".into(),
            },
            Refusal::NotScanned {
                why: "timeout".into(),
            },
            Refusal::TooMany { limit: 20 },
        ];
        assert!(matches!(
            Refusal::from_scan(&crate::domain::ScanOutcome::Failed("x".into())),
            Some(Refusal::NotScanned { .. })
        ));
        let codes: std::collections::HashSet<_> = all.iter().map(Refusal::code).collect();
        assert_eq!(codes.len(), all.len());
        for r in &all {
            let (en, fr) = (r.explain(Language::En), r.explain(Language::Fr));
            assert_ne!(en, fr, "{r:?}");
            assert!(en.ends_with('.') && fr.ends_with('.'), "{r:?}: {en} / {fr}");
            assert!(r.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(
            all[2].explain(Language::En),
            "The file is 7.0 MiB, over the limit of 5 MiB per file."
        );
        assert_eq!(
            all[2].explain(Language::Fr),
            "Le fichier fait 7,0 Mio, au-delà de la limite de 5 Mio par fichier."
        );
    }

    #[test]
    fn steps_run_in_spec_order() {
        let allowed = vec!["jpg".to_string()];
        let exe = {
            let mut b = vec![0u8; 128];
            b[..2].copy_from_slice(b"MZ");
            b
        };
        let big_exe = [exe.clone(), vec![0u8; 6 * 1024 * 1024]].concat();
        // Disabled beats everything.
        let off = Policy {
            enabled: false,
            ..policy(&allowed)
        };
        assert_eq!(
            check(&off, &part(Some("a.exe"), "x/y", &big_exe)).refusal,
            Some(Refusal::Disabled)
        );
        // Size beats extension and content.
        let got = check(&policy(&allowed), &part(Some("a.exe"), "x/y", &big_exe));
        assert_eq!(got.refusal.as_ref().map(Refusal::code), Some("too_large"));
        assert_eq!(
            got.sniffed_type.as_deref(),
            Some("application/vnd.microsoft.portable-executable")
        );
        // Extension beats content.
        let got = check(&policy(&allowed), &part(Some("a.exe"), "x/y", &exe));
        assert_eq!(
            got.refusal,
            Some(Refusal::ExtensionNotAllowed {
                extension: "exe".into()
            })
        );
        // Content last.
        let got = check(&policy(&allowed), &part(Some("a.jpg"), "image/jpeg", &exe));
        assert_eq!(got.refusal, Some(Refusal::Executable { what: "PE".into() }));
    }

    #[test]
    fn nameless_parts_are_judged_by_their_declared_type() {
        let allowed = vec!["png".to_string()];
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
        let got = check(&policy(&allowed), &part(None, "image/png", png));
        assert_eq!(
            (got.filename.as_str(), got.extension.as_deref(), got.refusal),
            ("attachment-1.png", Some("png"), None)
        );
        let got = check(
            &policy(&allowed),
            &part(None, "application/x-unknown", b"\0\x01\x02"),
        );
        assert_eq!(got.refusal, Some(Refusal::NoExtension));
        assert_eq!(got.filename, "attachment-1");
    }

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

    #[test]
    fn svg_table() {
        let allowed = vec!["svg".to_string()];
        let cases: [(&[u8], Option<&str>); 5] = [
            (
                b"<svg xmlns='http://www.w3.org/2000/svg'><rect/></svg>",
                None,
            ),
            (b"<?xml version='1.0'?><svg><rect/></svg>", None),
            (b"<svg onload='alert(1)'><rect/></svg>", Some("executable")),
            (b"<svg><a href='javascript:x()'/></svg>", Some("executable")),
            (b"just text", Some("content_mismatch")),
        ];
        for (bytes, want) in cases {
            let got = check(
                &policy(&allowed),
                &part(Some("x.svg"), "image/svg+xml", bytes),
            );
            assert_eq!(
                got.refusal.as_ref().map(Refusal::code),
                want,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
