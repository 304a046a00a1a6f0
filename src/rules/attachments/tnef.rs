//! A reader for TNEF (`winmail.dat`, `application/ms-tnef`): the files
//! Outlook wraps inside it, and the message body it may carry.
//!
//! Written here because no crate reads MimeKit's 19 test streams
//! correctly (see the module above). Format: [MS-OXTNEF]. A stream is a
//! 6-byte header (signature `0x223E9F78`, a key) and a run of attributes
//! (level, tag, length, data, checksum). The attachments' names, data and
//! types are in attributes (`attAttachTitle`, `attAttachData`) and in
//! MAPI property lists (`attAttachment`: long and Unicode names, data
//! objects, MIME type, content id); the body is in `attBody` or in the
//! message's properties (`PR_BODY`, `PR_BODY_HTML`, `PR_RTF_COMPRESSED`).
//!
//! Bounds: every length is checked against what is left of the input
//! before it is used (checked arithmetic, no allocation sized by a length
//! field: only slices of the input are copied); embedded messages are
//! not decoded here but handed over whole
//! ([`TnefFile::embedded_message`]: no recursion); at most [`MAX_FILES`] files; compressed
//! RTF expands to at most [`MAX_RTF_RATIO`] times its compressed size
//! (the format cannot do more) and [`MAX_RTF_BYTES`].
//!
//! Tolerance (as Outlook and MimeKit): bad checksums are ignored; a
//! property list that stops making sense ends there (the properties read
//! before it are kept); bytes after the last whole attribute that are not
//! an attribute (trailing junk) are ignored. A stream is refused
//! ([`TnefError`]) when its signature is wrong, when an attribute runs
//! past the end of the stream (a truncated file would be passed off as
//! whole), or when nothing at all could be read from it.

use std::fmt;

/// The TNEF signature, little-endian `0x223E9F78`.
pub const SIGNATURE: [u8; 4] = [0x78, 0x9F, 0x3E, 0x22];
/// At most this many files are taken out of one stream.
pub const MAX_FILES: usize = 1000;
/// Compressed RTF (LZFu): a 2-byte reference yields at most 17 bytes and
/// a control byte governs 8 items, so 9 compressed bytes give at most 136.
pub const MAX_RTF_RATIO: usize = 16;
/// And never more than this (the body of a mail).
pub const MAX_RTF_BYTES: usize = 32 * 1024 * 1024;

/// A decoded stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tnef {
    /// The attached files, in stream order.
    pub files: Vec<TnefFile>,
    /// The message bodies the stream carries, in the order found.
    pub bodies: Vec<Body>,
    /// What was tolerated (bad checksums, a property list cut short,
    /// trailing junk): for the trace, not an error.
    pub notes: Vec<String>,
}

/// One file inside the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TnefFile {
    /// The long name (`PR_ATTACH_LONG_FILENAME`), else the 8.3 one
    /// (`attAttachTitle`, `PR_ATTACH_FILENAME`), else its display name.
    pub name: Option<String>,
    /// `PR_ATTACH_MIME_TAG`, lower case.
    pub mime_type: Option<String>,
    /// `PR_ATTACH_CONTENT_ID`, without angle brackets.
    pub content_id: Option<String>,
    /// Shown in the body (`ATT_MHTML_REF` / rendered in body flag).
    pub inline: bool,
    /// An attached message (an Outlook item), itself a TNEF stream:
    /// [`decode`] it for its own files (the caller bounds the depth).
    pub embedded_message: bool,
    pub bytes: Vec<u8>,
}

/// The body the stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub kind: BodyKind,
    /// Text as UTF-8; HTML as sent (its charset is the stream's code
    /// page); RTF decompressed.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Text,
    Html,
    Rtf,
}

impl Body {
    /// The name the body goes by as a file (MimeKit's names).
    pub fn file_name(&self) -> &'static str {
        match self.kind {
            BodyKind::Text => "body.txt",
            BodyKind::Html => "body.html",
            BodyKind::Rtf => "body.rtf",
        }
    }
    pub fn mime_type(&self) -> &'static str {
        match self.kind {
            BodyKind::Text => "text/plain",
            BodyKind::Html => "text/html",
            BodyKind::Rtf => "application/rtf",
        }
    }
}

impl Tnef {
    /// The body as plain text, if the stream carries one: its text body,
    /// else the text of its RTF body.
    pub fn text(&self) -> Option<String> {
        let text = self
            .bodies
            .iter()
            .find(|b| b.kind == BodyKind::Text)
            .map(|b| String::from_utf8_lossy(&b.bytes).into_owned())
            .or_else(|| {
                self.bodies
                    .iter()
                    .find(|b| b.kind == BodyKind::Rtf)
                    .map(|b| rtf_to_text(&b.bytes))
            })?;
        let text = text.trim().to_string();
        (!text.is_empty()).then_some(text)
    }
}

/// Why a stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TnefError {
    NotTnef,
    /// An attribute runs past the end of the stream.
    Truncated {
        offset: usize,
    },
    /// No attribute at all.
    Empty,
}

impl fmt::Display for TnefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TnefError::NotTnef => write!(f, "not a TNEF stream (wrong signature)"),
            TnefError::Truncated { offset } => {
                write!(
                    f,
                    "the TNEF stream is cut short (an attribute at byte {offset} runs past its end)"
                )
            }
            TnefError::Empty => write!(f, "the TNEF stream holds no attribute"),
        }
    }
}

impl std::error::Error for TnefError {}

/// Decodes a TNEF stream.
pub fn decode(bytes: &[u8]) -> Result<Tnef, TnefError> {
    let mut out = Tnef::default();
    decode_into(bytes, &mut out)?;
    Ok(out)
}

// Attribute ids (the low 16 bits of the attribute tag).
const ATT_BODY: u16 = 0x800C;
const ATT_ATTACH_DATA: u16 = 0x800F;
const ATT_ATTACH_TITLE: u16 = 0x8010;
const ATT_ATTACH_REND_DATA: u16 = 0x9002;
const ATT_MSG_PROPS: u16 = 0x9003;
const ATT_ATTACHMENT: u16 = 0x9005;
const ATT_OEM_CODEPAGE: u16 = 0x9007;

const LEVEL_MESSAGE: u8 = 1;
const LEVEL_ATTACHMENT: u8 = 2;

// MAPI property ids.
const PR_BODY: u16 = 0x1000;
const PR_RTF_COMPRESSED: u16 = 0x1009;
const PR_BODY_HTML: u16 = 0x1013;
const PR_DISPLAY_NAME: u16 = 0x3001;
const PR_ATTACH_DATA: u16 = 0x3701;
const PR_ATTACH_FILENAME: u16 = 0x3704;
const PR_ATTACH_METHOD: u16 = 0x3705;
const PR_ATTACH_LONG_FILENAME: u16 = 0x3707;
const PR_ATTACH_MIME_TAG: u16 = 0x370E;
const PR_ATTACH_CONTENT_ID: u16 = 0x3712;
const PR_ATTACH_FLAGS: u16 = 0x3714;
const PR_INTERNET_CPID: u16 = 0x3FDE;
const PR_MESSAGE_CODEPAGE: u16 = 0x3FFD;

// MAPI property types.
const PT_STRING8: u16 = 0x001E;
const PT_UNICODE: u16 = 0x001F;
const PT_BINARY: u16 = 0x0102;
const PT_OBJECT: u16 = 0x000D;
const MV_FLAG: u16 = 0x1000;

const ATTACH_EMBEDDED_MSG: u32 = 5;
/// `IID_IMessage` {00020307-0000-0000-C000-000000000046} as stored.
const IID_IMESSAGE: [u8; 16] = [
    0x07, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46,
];

/// A bounded cursor over the input: every read is checked.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Skips the padding after a variable-length value of `len` bytes.
    fn pad(&mut self, len: usize) -> Option<()> {
        let pad = (4 - (len & 3)) & 3;
        // A last value may lack its padding.
        let pad = pad.min(self.remaining());
        self.take(pad).map(|_| ())
    }
}

/// An attachment being gathered (from `attAttachRendData` to the next).
#[derive(Default)]
struct Pending {
    title: Option<String>,
    long_name: Option<String>,
    short_name: Option<String>,
    display_name: Option<String>,
    mime_type: Option<String>,
    content_id: Option<String>,
    inline: bool,
    method: u32,
    data: Option<Vec<u8>>,
    /// The data is an embedded message.
    embedded: bool,
}

fn decode_into(bytes: &[u8], out: &mut Tnef) -> Result<(), TnefError> {
    let mut c = Cursor::new(bytes);
    if c.take(4) != Some(&SIGNATURE[..]) {
        return Err(TnefError::NotTnef);
    }
    c.u16().ok_or(TnefError::Empty)?; // the key, unused
    let mut codepage: u32 = 1252;
    let mut pending: Option<Pending> = None;
    let mut attributes = 0usize;
    while c.remaining() > 0 {
        let start = c.pos;
        let level = c.u8();
        if !matches!(level, Some(LEVEL_MESSAGE | LEVEL_ATTACHMENT)) {
            out.notes.push(format!(
                "{} bytes of trailing junk ignored",
                bytes.len() - start
            ));
            break;
        }
        let (Some(tag), Some(len)) = (c.u32(), c.u32()) else {
            return Err(TnefError::Truncated { offset: start });
        };
        let Some(data) = usize::try_from(len).ok().and_then(|n| c.take(n)) else {
            return Err(TnefError::Truncated { offset: start });
        };
        // The checksum: a stream may end without it; a wrong one is tolerated.
        match c.u16() {
            Some(sum) if sum != checksum(data) => {
                out.notes.push(format!("bad checksum at byte {start}"))
            }
            Some(_) => {}
            None if c.remaining() == 0 => {}
            None => return Err(TnefError::Truncated { offset: start }),
        }
        attributes += 1;
        let id = (tag & 0xFFFF) as u16;
        match id {
            ATT_OEM_CODEPAGE => {
                if let Some(cp) = Cursor::new(data).u32() {
                    codepage = cp;
                }
            }
            ATT_BODY => {
                let text = decode_string8(trim_nul(data), codepage);
                push_body(out, BodyKind::Text, text.into_bytes());
            }
            ATT_MSG_PROPS => {
                let note = read_props(data, &mut |p| message_prop(p, out, &mut codepage));
                if let Some(note) = note {
                    out.notes.push(note);
                }
            }
            ATT_ATTACH_REND_DATA => {
                if let Some(p) = pending.take() {
                    finish(p, out);
                }
                pending = Some(Pending::default());
            }
            ATT_ATTACH_TITLE => {
                let p = pending.get_or_insert_with(Pending::default);
                let t = decode_string8(trim_nul(data), codepage);
                if !t.trim().is_empty() {
                    p.title = Some(t);
                }
            }
            ATT_ATTACH_DATA => {
                let p = pending.get_or_insert_with(Pending::default);
                if p.data.is_none() {
                    p.data = Some(data.to_vec());
                }
            }
            ATT_ATTACHMENT => {
                let p = pending.get_or_insert_with(Pending::default);
                if let Some(note) = read_props(data, &mut |prop| attachment_prop(prop, p, codepage))
                {
                    out.notes.push(note);
                }
            }
            _ => {}
        }
    }
    if let Some(p) = pending.take() {
        finish(p, out);
    }
    if attributes == 0 {
        return Err(TnefError::Empty);
    }
    Ok(())
}

fn checksum(data: &[u8]) -> u16 {
    data.iter()
        .fold(0u16, |sum, &b| sum.wrapping_add(u16::from(b)))
}

fn push_body(out: &mut Tnef, kind: BodyKind, bytes: Vec<u8>) {
    if !bytes.is_empty() && !out.bodies.iter().any(|b| b.kind == kind) {
        out.bodies.push(Body { kind, bytes });
    }
}

/// The file a finished attachment gives, if it has data.
fn finish(p: Pending, out: &mut Tnef) {
    let Some(data) = p.data else {
        return; // no data: nothing to gate (an attachment by reference)
    };
    if out.files.len() >= MAX_FILES {
        out.notes
            .push(format!("files after the first {MAX_FILES} are dropped"));
        return;
    }
    let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let name = nonempty(p.long_name)
        .or(nonempty(p.title))
        .or(nonempty(p.short_name))
        .or(nonempty(p.display_name));
    let embedded = (p.embedded || p.method == ATTACH_EMBEDDED_MSG) && data.starts_with(&SIGNATURE);
    out.files.push(TnefFile {
        name,
        mime_type: p.mime_type,
        content_id: p.content_id,
        inline: p.inline,
        embedded_message: embedded,
        bytes: data,
    });
}

/// One MAPI property: its id, type and first value's bytes.
struct Prop<'a> {
    id: u16,
    ty: u16,
    value: &'a [u8],
}

impl Prop<'_> {
    fn string(&self, codepage: u32) -> Option<String> {
        let s = match self.ty & !MV_FLAG {
            PT_UNICODE => decode_utf16(self.value),
            PT_STRING8 | PT_BINARY => decode_string8(trim_nul(self.value), codepage),
            _ => return None,
        };
        let s = s.trim_end_matches('\0').to_string();
        Some(s)
    }
    fn u32(&self) -> Option<u32> {
        Cursor::new(self.value).u32()
    }
}

/// Walks a MAPI property list, calling `each` with every property's
/// first value. `Some(note)` when the list stopped making sense (the
/// properties before that point were handed over).
fn read_props(data: &[u8], each: &mut dyn FnMut(&Prop<'_>)) -> Option<String> {
    let mut c = Cursor::new(data);
    let Some(count) = c.u32() else {
        return Some("an empty property list".into());
    };
    for n in 0..count {
        if c.remaining() == 0 {
            return Some(format!(
                "a property list announces {count} properties but holds {n}"
            ));
        }
        match read_prop(&mut c) {
            Some(Some(prop)) => each(&prop),
            Some(None) => {}
            None => {
                return Some(format!(
                    "a property list could not be read past property {n} (byte {})",
                    c.pos
                ));
            }
        }
    }
    None
}

/// One property; `Some(None)` for one of a type this reader skips.
fn read_prop<'a>(c: &mut Cursor<'a>) -> Option<Option<Prop<'a>>> {
    let ty = c.u16()?;
    let id = c.u16()?;
    if id >= 0x8000 {
        // A named property: GUID, kind, then an id or a name.
        c.take(16)?;
        match c.u32()? {
            0 => {
                c.u32()?;
            }
            1 => {
                let len = usize::try_from(c.u32()?).ok()?;
                c.take(len)?;
                c.pad(len)?;
            }
            _ => return None,
        }
    }
    let multi = ty & MV_FLAG != 0;
    let base = ty & !MV_FLAG;
    let width = match base {
        0x0001 => Some(0),                                     // PT_NULL
        0x0002 | 0x0003 | 0x0004 | 0x000A | 0x000B => Some(4), // short, long, float, error, bool
        0x0005 | 0x0006 | 0x0007 | 0x0014 | 0x0040 => Some(8), // double, currency, apptime, i8, systime
        0x0048 => Some(16),                                    // CLSID
        PT_STRING8 | PT_UNICODE | PT_BINARY | PT_OBJECT => None,
        _ => return None, // unknown: cannot know its size
    };
    let mut first: Option<&'a [u8]> = None;
    match width {
        Some(w) => {
            let count = if multi { c.u32()? as usize } else { 1 };
            // each value takes `w` bytes: a count beyond what is left is a lie
            let total = count.checked_mul(w)?;
            let all = c.take(total)?;
            first = all.get(..w);
        }
        None => {
            // Variable-length values always carry a count, one or more.
            let count = c.u32()? as usize;
            if count > c.remaining() / 4 {
                return None;
            }
            for _ in 0..count {
                let len = usize::try_from(c.u32()?).ok()?;
                let v = c.take(len)?;
                c.pad(len)?;
                first.get_or_insert(v);
            }
        }
    }
    Some(first.map(|value| Prop { id, ty, value }))
}

fn message_prop(p: &Prop<'_>, out: &mut Tnef, codepage: &mut u32) {
    match p.id {
        PR_INTERNET_CPID | PR_MESSAGE_CODEPAGE => {
            if let Some(cp) = p.u32().filter(|&cp| cp != 0) {
                *codepage = cp;
            }
        }
        PR_BODY => {
            if let Some(text) = p.string(*codepage) {
                push_body(out, BodyKind::Text, text.into_bytes());
            }
        }
        PR_BODY_HTML => {
            let bytes = match p.ty & !MV_FLAG {
                PT_UNICODE => decode_utf16(p.value).into_bytes(),
                _ => trim_nul(p.value).to_vec(),
            };
            push_body(out, BodyKind::Html, bytes);
        }
        PR_RTF_COMPRESSED => match decompress_rtf(p.value) {
            Ok(rtf) => push_body(out, BodyKind::Rtf, rtf),
            Err(e) => out.notes.push(format!("the RTF body: {e}")),
        },
        _ => {}
    }
}

fn attachment_prop(p: &Prop<'_>, a: &mut Pending, codepage: u32) {
    match p.id {
        PR_ATTACH_LONG_FILENAME => a.long_name = p.string(codepage),
        PR_ATTACH_FILENAME => a.short_name = p.string(codepage),
        PR_DISPLAY_NAME => a.display_name = p.string(codepage),
        PR_ATTACH_MIME_TAG => {
            a.mime_type = p
                .string(codepage)
                .map(|m| m.trim().to_ascii_lowercase())
                .filter(|m| m.contains('/'))
        }
        PR_ATTACH_CONTENT_ID => {
            a.content_id = p
                .string(codepage)
                .map(|s| s.trim().trim_matches(['<', '>']).to_string())
                .filter(|s| !s.is_empty())
        }
        PR_ATTACH_METHOD => a.method = p.u32().unwrap_or(0),
        PR_ATTACH_FLAGS => a.inline = p.u32().is_some_and(|f| f & 0x4 != 0),
        PR_ATTACH_DATA => {
            let data = if p.ty & !MV_FLAG == PT_OBJECT {
                // An object starts with the IID of its interface.
                if p.value.get(..16) == Some(&IID_IMESSAGE[..]) {
                    a.embedded = true;
                }
                p.value.get(16..).unwrap_or_default()
            } else {
                p.value
            };
            a.data = Some(data.to_vec());
        }
        _ => {}
    }
}

fn trim_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
    &b[..end]
}

fn decode_utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// An 8-bit string in a Windows code page.
fn decode_string8(b: &[u8], codepage: u32) -> String {
    if let Ok(s) = std::str::from_utf8(b)
        && (b.is_ascii() || codepage == 65001)
    {
        return s.to_string();
    }
    let label = match codepage {
        65001 => "utf-8",
        932 => "shift_jis",
        936 => "gbk",
        949 => "euc-kr",
        950 => "big5",
        20866 => "koi8-r",
        21866 => "koi8-u",
        28591 => "iso-8859-1",
        28592 => "iso-8859-2",
        28605 => "iso-8859-15",
        1250..=1258 => return decode_label(b, &format!("windows-{codepage}")),
        _ => "windows-1252",
    };
    decode_label(b, label)
}

fn decode_label(b: &[u8], label: &str) -> String {
    match mail_parser::decoders::charsets::map::charset_decoder(label.as_bytes()) {
        Some(decode) => decode(b),
        None => b.iter().map(|&x| char::from(x)).collect(),
    }
}

/// Why compressed RTF could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtfError {
    Short,
    UnknownMethod(u32),
    TooLarge,
}

impl fmt::Display for RtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtfError::Short => write!(f, "compressed RTF cut short"),
            RtfError::UnknownMethod(m) => write!(f, "unknown RTF compression {m:#x}"),
            RtfError::TooLarge => write!(f, "compressed RTF claims an impossible size"),
        }
    }
}

/// The dictionary LZFu starts with ([MS-OXRTFCP] 2.1.2.1).
const LZFU_PREFIX: &[u8] = b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx";

/// Expands `PR_RTF_COMPRESSED` ([MS-OXRTFCP]): `LZFu` (compressed) or
/// `MELA` (stored). The CRC is not checked (Outlook does not either).
pub fn decompress_rtf(b: &[u8]) -> Result<Vec<u8>, RtfError> {
    let mut c = Cursor::new(b);
    let (Some(_comp_size), Some(raw_size), Some(method), Some(_crc)) =
        (c.u32(), c.u32(), c.u32(), c.u32())
    else {
        return Err(RtfError::Short);
    };
    let raw_size = raw_size as usize;
    let input = &b[16..];
    match method {
        0x414C_454D => {
            // MELA: stored as is.
            input
                .get(..raw_size)
                .map(<[u8]>::to_vec)
                .ok_or(RtfError::Short)
        }
        0x7546_5A4C => {
            let limit = input.len().saturating_mul(MAX_RTF_RATIO).min(MAX_RTF_BYTES);
            if raw_size > limit {
                return Err(RtfError::TooLarge);
            }
            let mut dict = [0u8; 4096];
            dict[..LZFU_PREFIX.len()].copy_from_slice(LZFU_PREFIX);
            let mut wpos = LZFU_PREFIX.len();
            let mut out = Vec::new();
            let mut i = 0usize;
            'outer: while i < input.len() {
                let control = input[i];
                i += 1;
                for bit in 0..8 {
                    if out.len() >= raw_size {
                        break 'outer;
                    }
                    if control & (1 << bit) == 0 {
                        let Some(&lit) = input.get(i) else {
                            break 'outer;
                        };
                        i += 1;
                        out.push(lit);
                        dict[wpos] = lit;
                        wpos = (wpos + 1) % 4096;
                    } else {
                        let (Some(&hi), Some(&lo)) = (input.get(i), input.get(i + 1)) else {
                            break 'outer;
                        };
                        i += 2;
                        let word = (usize::from(hi) << 8) | usize::from(lo);
                        let offset = word >> 4;
                        let len = (word & 0xF) + 2;
                        if offset == wpos {
                            break 'outer; // the end marker
                        }
                        for k in 0..len {
                            if out.len() >= raw_size {
                                break 'outer;
                            }
                            let byte = dict[(offset + k) % 4096];
                            out.push(byte);
                            dict[wpos] = byte;
                            wpos = (wpos + 1) % 4096;
                        }
                    }
                }
            }
            Ok(out)
        }
        m => Err(RtfError::UnknownMethod(m)),
    }
}

/// The text of an RTF document, roughly: paragraphs and tabs kept,
/// `\'hh` escapes read as Windows-1252, `\uN` as Unicode, control words,
/// font/colour/style tables, pictures and other `{\*...}` destinations
/// dropped. An HTML body that Outlook wrapped in RTF (`\fromhtml`)
/// keeps only its text too. Group depth is bounded by a counter, not
/// recursion.
pub fn rtf_to_text(rtf: &[u8]) -> String {
    const SKIP: &[&str] = &[
        "fonttbl",
        "colortbl",
        "stylesheet",
        "info",
        "pict",
        "object",
        "header",
        "footer",
        "listtable",
        "listoverridetable",
        "rsidtbl",
        "generator",
        "xmlnstbl",
        "themedata",
        "datastore",
        "latentstyles",
        "filetbl",
        "revtbl",
        "mmathPr",
        "htmltag",
    ];
    let mut out: Vec<u8> = Vec::new();
    // For each open group: whether its text is dropped.
    let mut skip_stack: Vec<bool> = Vec::new();
    let mut skipping = false;
    let mut uc = 1usize;
    let mut pending_skip = 0usize;
    let mut i = 0usize;
    let b = rtf;
    let mut group_start = false;
    while i < b.len() {
        let ch = b[i];
        match ch {
            b'{' => {
                if skip_stack.len() < 10_000 {
                    skip_stack.push(skipping);
                }
                group_start = true;
                i += 1;
                continue;
            }
            b'}' => {
                skipping = skip_stack.pop().unwrap_or(false);
                i += 1;
            }
            b'\\' => {
                i += 1;
                let Some(&next) = b.get(i) else { break };
                if next.is_ascii_alphabetic() {
                    let start = i;
                    while i < b.len() && b[i].is_ascii_alphabetic() && i - start < 32 {
                        i += 1;
                    }
                    let word = std::str::from_utf8(&b[start..i]).unwrap_or("");
                    let nstart = i;
                    if i < b.len() && b[i] == b'-' {
                        i += 1;
                    }
                    while i < b.len() && b[i].is_ascii_digit() && i - nstart < 10 {
                        i += 1;
                    }
                    let param: Option<i64> = std::str::from_utf8(&b[nstart..i])
                        .ok()
                        .and_then(|s| s.parse().ok());
                    if i < b.len() && b[i] == b' ' {
                        i += 1;
                    }
                    if group_start && SKIP.contains(&word) {
                        skipping = true;
                    }
                    if !skipping {
                        match word {
                            "par" | "line" | "row" => out.push(b'\n'),
                            "tab" | "cell" => out.push(b'\t'),
                            "uc" => uc = param.unwrap_or(1).clamp(0, 10) as usize,
                            "u" => {
                                let n = param.unwrap_or(0);
                                let n = if n < 0 { n + 65536 } else { n };
                                let c = u32::try_from(n)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .unwrap_or('\u{FFFD}');
                                let mut buf = [0u8; 4];
                                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                                pending_skip = uc;
                            }
                            _ => {}
                        }
                    }
                    group_start = false;
                    continue;
                }
                i += 1;
                match next {
                    b'*' if group_start => skipping = true,
                    b'\'' => {
                        let hex = b.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                        if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                            i += 2;
                            if pending_skip > 0 {
                                pending_skip -= 1;
                            } else if !skipping {
                                out.extend_from_slice(
                                    decode_label(&[v], "windows-1252").as_bytes(),
                                );
                            }
                        }
                    }
                    b'~' if !skipping => out.push(b' '),
                    b'\\' | b'{' | b'}' if !skipping => {
                        if pending_skip > 0 {
                            pending_skip -= 1;
                        } else {
                            out.push(next);
                        }
                    }
                    _ => {}
                }
                group_start = false;
                continue;
            }
            b'\r' | b'\n' => i += 1,
            _ => {
                if pending_skip > 0 {
                    pending_skip -= 1;
                } else if !skipping {
                    out.push(ch);
                }
                i += 1;
            }
        }
        group_start = false;
    }
    let text = String::from_utf8_lossy(&out);
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

#[cfg(test)]
mod tests;
