//! What a reply says once the quoted history and the signature are removed.
//!
//! Works line by line, by hand, with no regular expressions, so that hostile
//! input (100k lines of `>`, one 1 MB line) costs linear time. The rules, in
//! order:
//! 1. **History cut.** Everything from the first of these down is the quoted
//!    history: an "-----Original Message-----" / forwarded-message marker, an
//!    Outlook-style header block ("From: … Sent: … To: … Subject:", in a dozen
//!    languages), or a quote header ("On … wrote:") followed by *unprefixed*
//!    text.
//! 2. **Signature cut** (optional): the first "-- " line (also "--"), or a
//!    line of underscores (mailing-list footers).
//! 3. **Trailing quotes.** From the bottom: `>` lines and blank lines, the
//!    quote header above them, mobile "Sent from my iPhone" lines and a
//!    "-Name" sign-off (signature mode), repeatedly.
//! 4. **Bottom-posting.** A quote header and its `>` block at the very top,
//!    followed by the answer with no other quote, is history too.
//!
//! What is left may still hold `>` lines between answers: that is an inline
//! reply, kept whole because the answers need their questions.
//!
//! HTML parts go through [`html`], which renders `<blockquote>` as `>` lines,
//! marks attribution containers (Gmail, Thunderbird) and cuts at Outlook's
//! reply containers, then the same rules apply.

use std::borrow::Cow;

mod html;

/// An HTML reply without its quoted history, as HTML (see [`html`]).
pub fn html_without_history(html: &str, keep_quotes: bool) -> String {
    html::without_history(html, keep_quotes)
}

/// The same HTML with nothing removed, its nesting capped.
pub fn html_bounded(html: &str) -> String {
    html::bounded(html)
}

#[cfg(test)]
mod fixture_tests;

/// The text of a reply that belongs to its author.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Visible {
    /// The visible text, `\n` line ends, no leading or trailing blank lines.
    pub text: String,
    /// Quoted history (quote lines, quote headers, a cut-off original) was
    /// removed.
    pub removed_quote: bool,
    /// A signature ("-- " block, "Sent from my iPhone", "-Name") was removed.
    pub removed_signature: bool,
    /// `text` keeps quote lines interleaved with answers.
    pub inline_reply: bool,
    /// Nothing of the author's own is left: `text` is empty or whitespace
    /// (also true for an empty body).
    pub only_quotes: bool,
}

/// What to remove besides the quoted history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Remove the signature too (the default). Off, only quotes go.
    pub strip_signature: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strip_signature: true,
        }
    }
}

/// The visible text of a plain-text part.
pub fn visible_text(body: &str) -> Visible {
    visible_text_with(body, Options::default())
}

/// The visible text of an HTML part, as plain text.
pub fn visible_html(html: &str) -> Visible {
    visible_html_with(html, Options::default())
}

pub fn visible_text_with(body: &str, options: Options) -> Visible {
    let lines = body
        .split('\n')
        .map(|l| {
            let l = l.strip_suffix('\r').unwrap_or(l);
            Line {
                text: dashed_header(l).map_or(Cow::Borrowed(l), Cow::Owned),
                attribution: false,
            }
        })
        .collect();
    strip(lines, options)
}

pub fn visible_html_with(html: &str, options: Options) -> Visible {
    let rendered = html::render(html);
    let lines = rendered
        .lines
        .into_iter()
        .map(|l| Line {
            text: Cow::Owned(l.text),
            attribution: l.attribution,
        })
        .collect();
    let mut visible = strip(lines, options);
    visible.removed_quote |= rendered.cut_dropped_text;
    visible
}

struct Line<'a> {
    text: Cow<'a, str>,
    /// Set by the HTML renderer for attribution containers.
    attribution: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Blank,
    Text,
    Quoted,
    /// A quote header ("On … wrote:"), possibly one of several lines.
    Attribution,
}

/// A quote header found by its wording.
struct Span {
    start: usize,
    end: usize, // inclusive
    /// Has a time or an address: sure enough to cut unprefixed text below.
    strong: bool,
}

fn strip(lines: Vec<Line<'_>>, options: Options) -> Visible {
    let mut kinds: Vec<Kind> = lines.iter().map(classify).collect();
    let spans = mark_attributions(&lines, &mut kinds);
    let text = |i: usize| lines[i].text.as_ref();
    let mut v = Visible::default();
    let mut end = lines.len();

    if let Some(cut) = find_history_start(&lines, &kinds, &spans) {
        v.removed_quote |= (cut..end).any(|i| kinds[i] != Kind::Blank);
        end = cut;
    }

    if options.strip_signature
        && let Some(cut) =
            (0..end).find(|&i| kinds[i] == Kind::Text && is_signature_delimiter(text(i)))
    {
        v.removed_signature = true;
        v.removed_quote |= (cut..end).any(|i| matches!(kinds[i], Kind::Quoted | Kind::Attribution));
        end = cut;
    }

    // Trailing history, repeatedly: blank and `>` lines, the header above
    // them, and (signature mode) mobile signatures and "-Name" sign-offs.
    loop {
        let mut removed_quote_lines = false;
        while end > 0 && matches!(kinds[end - 1], Kind::Blank | Kind::Quoted) {
            if kinds[end - 1] == Kind::Quoted {
                removed_quote_lines = true;
                v.removed_quote = true;
            }
            end -= 1;
        }
        if end == 0 {
            break;
        }
        let last = end - 1;
        // A header the HTML marked goes only with the quote under it; one
        // found by its wording goes even alone ("On … wrote:" and nothing).
        if kinds[last] == Kind::Attribution && (removed_quote_lines || !lines[last].attribution) {
            while end > 0 && matches!(kinds[end - 1], Kind::Attribution | Kind::Blank) {
                end -= 1;
            }
            v.removed_quote = true;
        } else if removed_quote_lines && looks_like_unknown_attribution(text(last)) {
            end -= 1;
            v.removed_quote = true;
        } else if options.strip_signature
            && (is_mobile_signature(text(last))
                || (is_dash_sign_off(text(last)) && (last == 0 || kinds[last - 1] == Kind::Blank)))
        {
            end -= 1;
            v.removed_signature = true;
        } else {
            break;
        }
    }

    let mut start = 0;
    if let Some(answer) = bottom_posted_answer(&kinds[..end]) {
        start = answer;
        v.removed_quote = true;
    }

    while start < end && kinds[start] == Kind::Blank {
        start += 1;
    }
    while end > start && kinds[end - 1] == Kind::Blank {
        end -= 1;
    }
    v.inline_reply = kinds[start..end].contains(&Kind::Quoted);
    let mut out = String::new();
    for (n, line) in lines[start..end].iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&line.text);
    }
    v.only_quotes = out.trim().is_empty();
    v.text = out;
    v
}

fn classify(line: &Line<'_>) -> Kind {
    let t = line.text.as_ref();
    if is_blank(t) {
        Kind::Blank
    } else if is_quote_prefixed(t) {
        Kind::Quoted
    } else if line.attribution {
        Kind::Attribution
    } else {
        Kind::Text
    }
}

/// `> text`, or `| text` as some clients (Zoho, old Outlook settings)
/// quote: a bar followed by a space or nothing.
fn is_quote_prefixed(t: &str) -> bool {
    let t = t.trim_start();
    t.starts_with('>') || t == "|" || t.starts_with("| ")
}

/// Zoho's quote header `---- On … wrote ----` as the usual
/// `On … wrote:`, so that the header rules below see it.
fn dashed_header(t: &str) -> Option<String> {
    let trimmed = t.trim();
    if !(trimmed.starts_with("----") && trimmed.ends_with("----")) || trimmed.len() > MAX_HEADER_LEN
    {
        return None;
    }
    let inner = trimmed.trim_matches(|c: char| c == '-' || c.is_whitespace());
    let lower = normalize(inner);
    (has_digit_or_at(inner)
        && [
            "wrote",
            "a écrit",
            "a ecrit",
            "schrieb",
            "escribió",
            "ha scritto",
            "escreveu",
            "skrev",
        ]
        .iter()
        .any(|v| lower.ends_with(v)))
    .then(|| format!("{inner}:"))
}

/// Zero-width and direction marks some clients sprinkle into headers.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

fn is_blank(s: &str) -> bool {
    s.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// Longest line that can be a quote header or a marker; longer lines are
/// prose (and are never lower-cased or scanned twice).
const MAX_HEADER_LEN: usize = 400;

/// Lower-cased, whitespace collapsed, invisible marks dropped, full-width
/// colon folded, no space before a final colon ("a écrit :" → "a écrit:").
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if is_invisible(c) {
            continue;
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if c == '：' {
            out.push(':');
        } else {
            out.extend(c.to_lowercase());
        }
    }
    if out.ends_with(" :") {
        out.truncate(out.len() - 2);
        out.push(':');
    }
    out
}

fn ends_with_colon(s: &str) -> bool {
    let t = s.trim_end();
    t.ends_with(':') || t.ends_with('：')
}

fn has_digit_or_at(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit() || c == '@')
}

/// `12:34` somewhere, or an address.
fn has_time_or_at(s: &str) -> bool {
    let b = s.as_bytes();
    s.contains('@')
        || (1..b.len().saturating_sub(2)).any(|i| {
            b[i] == b':'
                && b[i - 1].is_ascii_digit()
                && b[i + 1].is_ascii_digit()
                && b[i + 2].is_ascii_digit()
        })
}

/// Quote headers that open with a fixed word and end with a verb: the most
/// common clients' "On … wrote:" in each language. `true`: the verb must end
/// the header; `false`: it may sit anywhere ("Am … schrieb X <x@y>:").
const OPENER_HEADERS: &[(&str, &str, bool)] = &[
    ("on ", "wrote:", true),
    ("on ", "writes:", true),
    ("le ", "a écrit:", true),
    ("le ", "a ecrit:", true),
    ("am ", "schrieb", false),
    ("el ", "escribió", false),
    ("el ", "escribio", false),
    ("il ", "ha scritto", false),
    ("op ", "schreef", false),
    ("w dniu ", "pisze", false),
    ("w dniu ", "napisał", false),
    ("w dniu ", "napisal", false),
    ("em ", "escreveu", false),
    ("den ", "skrev", false),
    ("på ", "skrev", false),
];

/// Verbs that end a quote header with no fixed opening word (Gmail puts the
/// date first in many languages): "… написал:", "… 写道：", "… kirjoitti:".
const TAIL_VERBS: &[&str] = &[
    "написал:",
    "написала:",
    "написал(а):",
    "写道:",
    "寫道:",
    "書きました:",
    "kirjoitti:",
    "napisał(a):",
    "napisała:",
    "napisał:",
    "napisal(a):",
    "pisze:",
    "escribió:",
    "escreveu:",
    "ha scritto:",
    "a écrit:",
    "schreef:",
    "schrieb:",
    "skrev:",
];

/// Verbs followed by the author's name and address: "… skrev X <x@y>:".
const MID_VERBS: &[&str] = &[
    " skrev ",
    " schrieb ",
    " schreef ",
    " escribió ",
    " escreveu ",
];

#[derive(PartialEq)]
enum HeaderMatch {
    None,
    /// Opening word and verb: sure.
    Full,
    /// Verb only: the lines above may belong to it.
    Tail,
}

fn match_attribution(joined: &str) -> HeaderMatch {
    if !has_digit_or_at(joined) || !joined.ends_with(':') {
        return HeaderMatch::None;
    }
    let body = joined.trim_start_matches(['-', '*', '_', ' ']);
    for (opener, verb, at_end) in OPENER_HEADERS {
        if body.starts_with(opener)
            && (if *at_end {
                body.ends_with(verb)
            } else {
                body.contains(verb)
            })
        {
            return HeaderMatch::Full;
        }
    }
    if TAIL_VERBS.iter().any(|v| body.ends_with(v))
        || (body.contains('@') && MID_VERBS.iter().any(|v| body.contains(v)))
    {
        return HeaderMatch::Tail;
    }
    HeaderMatch::None
}

/// Word stems of every verb above: a window without one is no header, and
/// is rejected before any matching.
const VERB_STEMS: &[&str] = &[
    "wrote",
    "writes",
    "crit",
    "schrieb",
    "escribi",
    "scritto",
    "schreef",
    "pisze",
    "napisa",
    "escreveu",
    "skrev",
    "написал",
    "写道",
    "寫道",
    "書きました",
    "kirjoitti",
];

/// Finds quote headers by their wording, possibly wrapped over 2-3 lines,
/// and marks their lines [`Kind::Attribution`].
fn mark_attributions(lines: &[Line<'_>], kinds: &mut [Kind]) -> Vec<Span> {
    // Each line is normalized at most once, and only near a candidate:
    // (normalized text, has a verb stem).
    let mut normalized: Vec<Option<(String, bool)>> = Vec::new();
    normalized.resize_with(lines.len(), || None);
    let mut spans = Vec::new();
    for i in 0..lines.len() {
        if kinds[i] != Kind::Text {
            continue;
        }
        let t = lines[i].text.as_ref();
        if t.len() > MAX_HEADER_LEN || !ends_with_colon(t) {
            continue;
        }
        // The window: this line and up to two text lines above it.
        let mut window = [i; 3];
        let mut size = 1;
        while size < 3 {
            match i.checked_sub(size) {
                Some(j) if kinds[j] == Kind::Text && lines[j].text.len() <= MAX_HEADER_LEN => {
                    window[size] = j;
                    size += 1;
                }
                _ => break,
            }
        }
        for &j in &window[..size] {
            if normalized[j].is_none() {
                let n = normalize(&lines[j].text);
                let has_verb = VERB_STEMS.iter().any(|v| n.contains(v));
                normalized[j] = Some((n, has_verb));
            }
        }
        let piece = |j: usize| {
            normalized[j]
                .as_ref()
                .map_or(("", false), |(n, v)| (n.as_str(), *v))
        };
        if !window[..size].iter().any(|&j| piece(j).1) {
            continue;
        }
        let mut joined = String::new();
        let mut full = None;
        let mut tail = None;
        for (k, &j) in window[..size].iter().enumerate() {
            joined = if k == 0 {
                piece(j).0.to_string()
            } else {
                format!("{} {joined}", piece(j).0)
            };
            match match_attribution(&joined) {
                HeaderMatch::Full => {
                    full = Some(i - k);
                    break;
                }
                HeaderMatch::Tail if tail.is_none() => tail = Some(i - k),
                _ => {}
            }
        }
        let start = match (full, tail) {
            (Some(s), _) => s,
            (None, Some(mut s)) => {
                // Wrapped date and name lines above a verb-only header.
                while s + 2 > i
                    && s > 0
                    && kinds[s - 1] == Kind::Text
                    && lines[s - 1].text.len() <= MAX_HEADER_LEN
                    && lines[s - 1]
                        .text
                        .chars()
                        .any(|c| c.is_ascii_digit() || c == '@' || c == '<')
                {
                    s -= 1;
                }
                s
            }
            (None, None) => continue,
        };
        let strong = (start..=i).any(|j| has_time_or_at(&lines[j].text));
        for kind in &mut kinds[start..=i] {
            *kind = Kind::Attribution;
        }
        spans.push(Span {
            start,
            end: i,
            strong,
        });
    }
    spans
}

/// A line ending with ':' that carries an address or a date: a quote header
/// in a language we don't know ("26.06.2014, 14:41, "A" <a@b.c>:"). Only
/// trusted right above a trailing quote block.
fn looks_like_unknown_attribution(line: &str) -> bool {
    if line.len() > MAX_HEADER_LEN || !ends_with_colon(line) {
        return false;
    }
    if line.contains('@') || has_time_or_at(line) {
        return true;
    }
    let b = line.as_bytes();
    // A year: 19xx or 20xx standing alone.
    (0..b.len().saturating_sub(3)).any(|i| {
        (b[i..].starts_with(b"19") || b[i..].starts_with(b"20"))
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && (i == 0 || !b[i - 1].is_ascii_digit())
            && b.get(i + 4).is_none_or(|c| !c.is_ascii_digit())
    })
}

/// Where the quoted history starts, if a marker, a header block or a quote
/// header over unprefixed text says so.
fn find_history_start(lines: &[Line<'_>], kinds: &[Kind], spans: &[Span]) -> Option<usize> {
    let text = |i: usize| lines[i].text.as_ref();
    let mut next_span = spans.iter().peekable();
    let mut i = 0;
    while i < lines.len() {
        while next_span.peek().is_some_and(|s| s.start < i) {
            next_span.next();
        }
        if let Some(span) = next_span.peek().filter(|s| s.start == i) {
            let after = (span.end + 1..lines.len()).find(|&j| kinds[j] != Kind::Blank);
            if span.strong && after.is_some_and(|j| kinds[j] == Kind::Text) {
                return Some(extend_cut_upward(lines, kinds, i));
            }
        }
        if kinds[i] == Kind::Text {
            if is_history_marker(text(i)) {
                return Some(extend_cut_upward(lines, kinds, i));
            }
            if header_field(text(i)).is_some() {
                let (qualifies, block_end) = header_block(lines, kinds, i);
                if qualifies {
                    return Some(extend_cut_upward(lines, kinds, i));
                }
                i = block_end.max(i + 1);
                continue;
            }
        }
        i += 1;
    }
    None
}

/// Moves a cut up over the blank lines, separator rules, markers and quote
/// headers that introduce the history.
fn extend_cut_upward(lines: &[Line<'_>], kinds: &[Kind], mut cut: usize) -> usize {
    while cut > 0 {
        let above = cut - 1;
        let t = lines[above].text.as_ref();
        let introduces = match kinds[above] {
            Kind::Blank | Kind::Attribution => true,
            Kind::Text => is_separator_rule(t) || is_history_marker(t),
            Kind::Quoted => false,
        };
        if !introduces {
            break;
        }
        cut = above;
    }
    cut
}

fn is_separator_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3
        && t.len() <= 200
        && t.chars()
            .all(|c| matches!(c, '-' | '_' | '=' | '*' | '~' | ' '))
}

/// "-----Original Message-----", "---------- Forwarded message ---------",
/// "Begin forwarded message:" and their translations, as whole lines.
const HISTORY_MARKERS: &[&str] = &[
    "original message",
    "original email",
    "message d'origine",
    "message d’origine",
    "ursprüngliche nachricht",
    "ursprungliche nachricht",
    "originalnachricht",
    "original nachricht",
    "original-nachricht",
    "mensaje original",
    "messaggio originale",
    "oorspronkelijk bericht",
    "origineel bericht",
    "mensagem original",
    "wiadomość oryginalna",
    "oryginalna wiadomość",
    "ursprungligt meddelande",
    "originalmeddelande",
    "oprindelig meddelelse",
    "opprinnelig melding",
    "alkuperäinen viesti",
    "исходное сообщение",
    "原始邮件",
    "原始郵件",
    "元のメッセージ",
    "forwarded message",
    "message transféré",
    "message transfere",
    "weitergeleitete nachricht",
    "mensaje reenviado",
    "messaggio inoltrato",
    "doorgestuurd bericht",
    "mensagem encaminhada",
    "wiadomość przekazana",
    "vidarebefordrat meddelande",
    "videresendt meddelelse",
    "videresendt melding",
    "välitetty viesti",
    "пересылаемое сообщение",
    "转发的邮件",
    "転送されたメッセージ",
    "begin forwarded message",
    "début du message réexpédié",
    "début du message transféré",
    "anfang der weitergeleiteten nachricht",
    "inicio del mensaje reenviado",
    "inizio messaggio inoltrato",
    "begin doorgestuurd bericht",
    "início da mensagem reencaminhada",
];

fn is_history_marker(line: &str) -> bool {
    // No marker has a digit or an address; most lines do, or are long.
    if line.len() > 120 || line.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
        return false;
    }
    let n = normalize(line);
    let core = n
        .trim_matches(|c: char| matches!(c, '-' | '_' | '=' | '*' | '~' | ' ' | '<' | '>'))
        .trim_end_matches(':')
        .trim();
    HISTORY_MARKERS.contains(&core)
}

/// The fields of an Outlook-style header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderField {
    From,
    Date,
    To,
    Cc,
    Subject,
}

const HEADER_KEYS: &[(&str, HeaderField)] = {
    use HeaderField::*;
    &[
        ("from", From),
        ("de", From),
        ("von", From),
        ("da", From),
        ("van", From),
        ("od", From),
        ("från", From),
        ("fra", From),
        ("от", From),
        ("lähettäjä", From),
        ("afzender", From),
        ("expéditeur", From),
        ("差出人", From),
        ("发件人", From),
        ("寄件者", From),
        ("寄件人", From),
        ("sent", Date),
        ("date", Date),
        ("envoyé", Date),
        ("envoye", Date),
        ("date d'envoi", Date),
        ("gesendet", Date),
        ("datum", Date),
        ("enviado", Date),
        ("enviada", Date),
        ("enviado em", Date),
        ("enviada em", Date),
        ("enviado el", Date),
        ("fecha", Date),
        ("inviato", Date),
        ("data", Date),
        ("verzonden", Date),
        ("wysłano", Date),
        ("skickat", Date),
        ("sendt", Date),
        ("отправлено", Date),
        ("дата", Date),
        ("lähetetty", Date),
        ("päivämäärä", Date),
        ("送信日時", Date),
        ("日付", Date),
        ("发送时间", Date),
        ("日期", Date),
        ("傳送時間", Date),
        ("to", To),
        ("à", To),
        ("a", To),
        ("an", To),
        ("para", To),
        ("aan", To),
        ("do", To),
        ("till", To),
        ("til", To),
        ("кому", To),
        ("vastaanottaja", To),
        ("宛先", To),
        ("收件人", To),
        ("收件者", To),
        ("cc", Cc),
        ("kopie", Cc),
        ("kopia", Cc),
        ("kopi", Cc),
        ("dw", Cc),
        ("копия", Cc),
        ("抄送", Cc),
        ("副本", Cc),
        ("subject", Subject),
        ("objet", Subject),
        ("betreff", Subject),
        ("asunto", Subject),
        ("oggetto", Subject),
        ("onderwerp", Subject),
        ("assunto", Subject),
        ("temat", Subject),
        ("ämne", Subject),
        ("emne", Subject),
        ("тема", Subject),
        ("aihe", Subject),
        ("件名", Subject),
        ("主题", Subject),
        ("主旨", Subject),
    ]
};

/// `From: …`, `*Sent:* …`, `De : …`: the field a header line names.
pub(crate) fn header_field(line: &str) -> Option<HeaderField> {
    let s = line.trim_start_matches(|c: char| c.is_whitespace() || c == '*' || is_invisible(c));
    let (colon, _) = s
        .char_indices()
        .take(30)
        .find(|&(_, c)| c == ':' || c == '：')?;
    let key = s[..colon].trim_matches(|c: char| c.is_whitespace() || c == '*' || is_invisible(c));
    if key.is_empty() {
        return None;
    }
    let key = key.to_lowercase();
    HEADER_KEYS.iter().find(|(k, _)| *k == key).map(|&(_, f)| f)
}

/// The header block starting at `start`: whether it is one (a From field and
/// at least three different fields), and the line after it.
fn header_block(lines: &[Line<'_>], kinds: &[Kind], start: usize) -> (bool, usize) {
    let mut seen: Vec<HeaderField> = Vec::new();
    let mut j = start;
    let mut continuation = 0;
    while j < lines.len() && kinds[j] == Kind::Text {
        match header_field(&lines[j].text) {
            Some(field) => {
                if !seen.contains(&field) {
                    seen.push(field);
                }
                continuation = 0;
            }
            // A wrapped long `To:` line.
            None if continuation < 2 && !seen.is_empty() => continuation += 1,
            None => break,
        }
        j += 1;
    }
    (seen.contains(&HeaderField::From) && seen.len() >= 3, j)
}

/// "-- " (RFC 3676), also a bare "--", and a rule of underscores (Outlook
/// and mailing-list footers).
fn is_signature_delimiter(line: &str) -> bool {
    let t = line.trim();
    t == "--" || (t.len() >= 8 && t.len() <= 200 && t.trim_start().chars().all(|c| c == '_'))
}

/// Openings of the one-line signatures phones and webmails add.
const MOBILE_SIGNATURES: &[&str] = &[
    "sent from my ",
    "sent from mail for ",
    "sent from outlook",
    "sent from yahoo mail",
    "sent from samsung",
    "sent from gmail",
    "sent from proton",
    "sent from aol",
    "sent from blackberry",
    "sent via blackberry",
    "sent with blackberry",
    "get outlook for ",
    "envoyé de mon ",
    "envoyé depuis mon ",
    "envoyé à partir de ",
    "von meinem ",
    "gesendet von meinem ",
    "enviado desde mi ",
    "enviado de mi ",
    "enviado do meu ",
    "enviado a partir do ",
    "inviato da ",
    "inviato dal mio ",
    "verzonden vanaf mijn ",
    "verstuurd vanaf mijn ",
    "wysłane z ",
    "skickat från min ",
    "sendt fra min ",
    "отправлено с ",
    "iphoneから送信",
    "发自我的",
    "從我的",
];

fn is_mobile_signature(line: &str) -> bool {
    if line.len() > 80 {
        return false;
    }
    let n = normalize(line);
    let n = n.strip_suffix('.').unwrap_or(&n);
    MOBILE_SIGNATURES.iter().any(|p| n.starts_with(p))
        && n.split(' ').count() <= 8
        && !n.contains([',', ';', '!', '?'])
}

/// "-Abhishek Kona": a dash glued to a short name, alone on the last line.
fn is_dash_sign_off(line: &str) -> bool {
    let t = line.trim();
    t.len() <= 40
        && t.strip_prefix('-').is_some_and(|rest| {
            rest.chars().next().is_some_and(char::is_alphabetic)
                && rest.split_whitespace().count() <= 4
        })
}

/// Bottom-posting: a quote header and its `>` block at the very top, then
/// the answer with no other quote. Returns where the answer starts.
fn bottom_posted_answer(kinds: &[Kind]) -> Option<usize> {
    let mut i = kinds.iter().position(|&k| k != Kind::Blank)?;
    if kinds[i] != Kind::Attribution {
        return None;
    }
    while i < kinds.len() && matches!(kinds[i], Kind::Attribution | Kind::Blank) {
        i += 1;
    }
    if kinds.get(i) != Some(&Kind::Quoted) {
        return None;
    }
    while i < kinds.len() && matches!(kinds[i], Kind::Quoted | Kind::Blank) {
        i += 1;
    }
    let rest = &kinds[i..];
    (rest.contains(&Kind::Text) && !rest.contains(&Kind::Quoted)).then_some(i)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod other_quoting_tests {
    use super::visible_text;

    /// Issue 12: Zoho's `---- On … wrote ----` header and `|`-prefixed
    /// quotes were not recognised, so the whole agent copy was relayed.
    #[test]
    fn zoho_headers_and_bar_quotes_are_quotes() {
        let zoho = "Thanks, fixed.\n\n---- On Tue, 01 Dec 2026 10:00:00 +0000 Support <support@example.test> wrote ----\n\nNew ticket\nTicket 2 · status open\n";
        let v = visible_text(zoho);
        assert_eq!(v.text, "Thanks, fixed.");
        assert!(v.removed_quote);
        let bars = "Thanks, fixed.\n\nOn Tue, 01 Dec 2026 at 10:00, Support <support@example.test> wrote:\n| New ticket\n| Ticket 2 · status open\n|\n| My printer is on fire.\n";
        assert_eq!(visible_text(bars).text, "Thanks, fixed.");
        // a bar inside prose is prose
        assert_eq!(visible_text("a | b").text, "a | b");
    }
}
