//! What a reply says once the quoted history and the signature are removed.
//!
//! Works line by line, by hand, with no regular expressions, so that hostile
//! input (100k lines of `>`, one 1 MB line) costs linear time. First the
//! lines whose prefix lies are fixed (a header's `>:` wrapped onto its own
//! line, a long quoted line wrapped without its `>`), and quote headers are
//! found by their wording in about 30 languages (wrapped over up to three
//! lines) or by their shape (a date, a name, the address closing the line).
//! Then, in order:
//! 1. **History cut.** Everything from the first of these down is the quoted
//!    history: an "-----Original Message-----" / forwarded-message marker
//!    (about 40 languages), an Outlook-style header block ("From: … Sent: …
//!    To: … Subject:", localised), or a quote header ("On … wrote:") with
//!    a time or an address followed by *unprefixed* text.
//! 2. **Signature cut** (optional): the first "-- " line (also "--" and
//!    "__"), or a line of underscores (mailing-list footers); then a phone's
//!    or mail app's one-line signature naming its device ("Sent from my
//!    iPhone", "Envoyé depuis mon iPhone" …): what follows it is history.
//! 3. **Trailing quotes.** From the bottom: `>` lines and blank lines, the
//!    quote header above them, mobile "Sent from my iPhone" lines and a
//!    "-Name" sign-off (signature mode), repeatedly; then a "Regards,"
//!    closing with at most five short lines under it.
//! 4. **Bottom-posting.** A quote header and its `>` block at the very top,
//!    followed by the answer with no other quote, is history too.
//!
//! What is left may still hold `>` lines between answers: that is an inline
//! reply. Each answer keeps the question lines right above it (at most six,
//! not the quote header nor nested quotes), see [`inline_context`];
//! [`Options::whole_inline_quotes`] keeps the whole blocks instead.
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
#[cfg(test)]
mod shape_tests;

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
    /// Keep every quote block between the answers of an inline reply, and
    /// its quote header, as email_reply_parser's "visible text" does. Off
    /// (the default, what Guichet relays): each answer keeps only the
    /// question lines right above it, see [`inline_context`].
    pub whole_inline_quotes: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strip_signature: true,
            whole_inline_quotes: false,
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
    fix_wrapped_lines(&lines, &mut kinds);
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

    // A phone's or client's one-line signature naming its device or app
    // ends the answer: what follows it is the quoted original ("Sent from
    // my iPhone" above an unprefixed copy, as Outlook mobile and many
    // phones write it).
    if options.strip_signature
        && let Some(cut) = (0..end).find(|&i| {
            kinds[i] == Kind::Text
                && is_device_signature(text(i))
                && (0..i).any(|j| kinds[j] == Kind::Text)
        })
    {
        v.removed_signature = true;
        v.removed_quote |= (cut + 1..end).any(|i| kinds[i] != Kind::Blank);
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

    if options.strip_signature
        && let Some(cut) = valediction_signature(&lines, &kinds, end)
    {
        end = cut;
        v.removed_signature = true;
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
    let keep = if v.inline_reply && !options.whole_inline_quotes {
        inline_context(&lines, &kinds, start, end)
    } else {
        vec![true; end - start]
    };
    let mut out = String::new();
    let mut first = true;
    let mut dropped = false;
    let mut last_blank = false;
    for (n, line) in lines[start..end].iter().enumerate() {
        if !keep[n] {
            dropped = true;
            v.removed_quote = true;
            continue;
        }
        let blank = kinds[start + n] == Kind::Blank;
        // one blank line where quoted history was dropped
        if blank && (first || (dropped && last_blank)) {
            continue;
        }
        if !blank {
            dropped = false;
        }
        if !first {
            out.push('\n');
        }
        first = false;
        last_blank = blank;
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

/// Two shapes where a line's prefix lies about it: a header's address
/// wrapped so that its closing `>:` starts the next line (Gmail: `… <x@y` /
/// `>:`), and a long quoted line wrapped by the replying client so that its
/// end lost the `>`: a lowercase continuation right under it, itself right
/// above more quote or at the end, under no question (an answer typed
/// under a question without a blank line stays an answer).
fn fix_wrapped_lines(lines: &[Line<'_>], kinds: &mut [Kind]) {
    let inside_quote =
        |kinds: &[Kind], i: usize| match (i + 1..lines.len()).find(|&j| kinds[j] != Kind::Blank) {
            None => true,
            Some(j) => j == i + 1 && kinds[j] == Kind::Quoted,
        };
    for i in 1..lines.len() {
        let t = lines[i].text.trim();
        let above = lines[i - 1].text.as_ref();
        if kinds[i] == Kind::Quoted
            && matches!(t, ">:" | ">):" | ">" | ">)")
            && kinds[i - 1] == Kind::Text
            && above.len() <= MAX_HEADER_LEN
            && above
                .rfind('<')
                .is_some_and(|l| above[l..].contains('@') && !above[l..].contains('>'))
        {
            kinds[i] = Kind::Text;
        } else if kinds[i] == Kind::Text
            && kinds[i - 1] == Kind::Quoted
            && !lines[i].attribution
            && above.len() >= 60
            && above.len() <= 2000
            && above.chars().count() >= 60
            && t.chars().next().is_some_and(char::is_lowercase)
            && !above.trim_end().ends_with('?')
            && inside_quote(kinds, i)
        {
            kinds[i] = Kind::Quoted;
        }
    }
}

/// The most quoted lines kept above an answer of an inline reply.
const MAX_CONTEXT_LINES: usize = 6;

/// Which lines of an inline reply (`start..end`) to relay: every answer,
/// and above each the question it answers: the quoted lines right above
/// it up to the first empty one (its paragraph), at most
/// [`MAX_CONTEXT_LINES`], never an older nested quote (`>>`) nor a quote
/// header (it names the ticket's internal addresses). The rest of the
/// history between answers is dropped.
fn inline_context(lines: &[Line<'_>], kinds: &[Kind], start: usize, end: usize) -> Vec<bool> {
    let mut keep = vec![true; end - start];
    let quoted = |k: Kind| matches!(k, Kind::Quoted | Kind::Attribution);
    let mut i = start;
    while i < end {
        if !quoted(kinds[i]) {
            i += 1;
            continue;
        }
        // a run of quote lines (and blanks between them) up to an answer
        let run = i;
        let mut j = i;
        while j < end && (quoted(kinds[j]) || kinds[j] == Kind::Blank) {
            j += 1;
        }
        // blank and empty quote lines right above the answer
        let mut bottom = j;
        while bottom > run
            && (kinds[bottom - 1] == Kind::Blank
                || (kinds[bottom - 1] == Kind::Quoted
                    && is_blank(quote_body(&lines[bottom - 1].text))))
        {
            bottom -= 1;
        }
        // the question: walk up from the answer
        let mut top = bottom;
        while top > run && bottom - top < MAX_CONTEXT_LINES {
            let t = lines[top - 1].text.as_ref();
            if kinds[top - 1] != Kind::Quoted || quote_depth(t) >= 2 || is_blank(quote_body(t)) {
                break;
            }
            top -= 1;
        }
        for k in &mut keep[run - start..top - start] {
            *k = false;
        }
        for n in bottom..j {
            keep[n - start] = kinds[n] == Kind::Blank;
        }
        i = j;
    }
    keep
}

/// How many `>` (or `|`) open a quote line.
fn quote_depth(t: &str) -> usize {
    t.chars()
        .take_while(|&c| c == '>' || c == '|' || c == ' ')
        .filter(|&c| c == '>' || c == '|')
        .count()
}

/// A quote line without its prefix.
fn quote_body(t: &str) -> &str {
    t.trim_start_matches(|c: char| c == '>' || c == '|' || c.is_whitespace())
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
    // the verb ends it ("On … wrote") or, in German and Dutch, comes
    // before the name ("Am … schrieb X <x@y>")
    (has_digit_or_at(inner)
        && ([
            "wrote",
            "a écrit",
            "a ecrit",
            "escribió",
            "ha scritto",
            "escreveu",
            "skrev",
            "napisał",
            "написал",
        ]
        .iter()
        .any(|v| lower.ends_with(v))
            || [" schrieb ", " schreef ", " skrev "]
                .iter()
                .any(|v| lower.contains(v))
            || lower.ends_with(" schrieb")
            || lower.ends_with(" schreef")))
    .then(|| format!("{inner}:"))
}

/// Zero-width and direction marks some clients sprinkle into headers.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{00AD}'
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
    let t = s.trim_end_matches(|c: char| c.is_whitespace() || is_invisible(c));
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
    // cs, sk, hr/sr/bs, sl
    "napsal:",
    "napsala:",
    "napsal(a):",
    "napísal:",
    "napísala:",
    "napísal(a):",
    "je napisao:",
    "je napisala:",
    "je napisao/la:",
    "je napisal:",
    "je napisal(a):",
    // tr, hu, ro, el
    "yazdı:",
    "şunu yazdı:",
    "írta:",
    "a scris:",
    "έγραψε:",
    // uk, bg, ar, he, ko
    "написав:",
    "написала:",
    "написав(ла):",
    "пише:",
    "написа:",
    "كتب:",
    "كتبت:",
    "כתב:",
    "כתבה:",
    "작성:",
    // ca, id, ms, vi, et, lt, lv, th, hi
    "va escriure:",
    "menulis:",
    "đã viết:",
    "kirjutas:",
    "rašė:",
    "rakstīja:",
    "เขียนว่า:",
    "ने लिखा:",
    "wrote:",
    "writes:",
];

/// Verbs followed by the author's name and address: "… skrev X <x@y>:".
const MID_VERBS: &[&str] = &[
    " skrev ",
    " schrieb ",
    " schreef ",
    " escribió ",
    " escreveu ",
    " írta ",
    " a scris ",
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
    "napsal",
    "napísal",
    "napisao",
    "napisal",
    "yazdı",
    "írta",
    "a scris",
    "έγραψε",
    "написав",
    "пише",
    "написа",
    "كتب",
    "כתב",
    "작성",
    "escriure",
    "menulis",
    "đã viết",
    "kirjutas",
    "rašė",
    "rakstīja",
    "เขียนว่า",
    "लिखा",
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
        if t.len() > MAX_HEADER_LEN {
            continue;
        }
        // "On … wrote" without its colon (some webmails) counts only with
        // an address in it
        let colon = ends_with_colon(t);
        if !colon && !ends_with_bare_verb(t) {
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
        let any_verb = window[..size].iter().any(|&j| piece(j).1);
        if !any_verb && !colon {
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
            let found = if !colon {
                if joined.contains('@')
                    && match_attribution(&format!("{joined}:")) == HeaderMatch::Full
                {
                    HeaderMatch::Full
                } else {
                    HeaderMatch::None
                }
            } else if any_verb {
                match match_attribution(&joined) {
                    HeaderMatch::None if dated_address(&joined) => HeaderMatch::Full,
                    m => m,
                }
            } else if dated_address(&joined) {
                HeaderMatch::Full
            } else {
                HeaderMatch::None
            };
            match found {
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

/// Verbs that end a quote header written without its colon.
const BARE_VERBS: &[&str] = &[
    "wrote",
    "écrit",
    "schrieb",
    "escribió",
    "scritto",
    "schreef",
    "escreveu",
    "skrev",
    "napisał",
    "napisał(a)",
    "написал",
    "написал(а)",
];

fn ends_with_bare_verb(t: &str) -> bool {
    let t = t.trim_end();
    t.len() <= MAX_HEADER_LEN
        && BARE_VERBS
            .iter()
            .any(|v| t.ends_with(v) && t[..t.len() - v.len()].ends_with(' '))
}

/// A header in any language: a date (a time or a year), a name, then the
/// address closing the line: `30.09.2017, 18.30, "A" <a@b.c>:`,
/// `2017-11-24 16:32 GMT+01:00 A <a@b.c>:`, `ср, 30 апр. 2025 г. в 15:19, A
/// <a@b.c>:`. Only the address may follow the date part.
fn dated_address(joined: &str) -> bool {
    let Some(body) = joined.strip_suffix(':') else {
        return false;
    };
    let body = body.trim_end();
    if body.len() > 300 || !body.contains('@') {
        return false;
    }
    let last = body.rsplit(' ').next().unwrap_or("");
    if !(body.ends_with('>') || body.ends_with(')') || last.contains('@')) {
        return false;
    }
    let head_end = body.find(['<', '@', '(']).unwrap_or(body.len());
    let head = &body[..head_end];
    // the date opens the header (a sentence naming a date and an address
    // has words before its date)
    let dated_early = head
        .split_whitespace()
        .take(4)
        .any(|w| w.bytes().any(|b| b.is_ascii_digit()));
    head.split_whitespace().count() <= 16
        && dated_early
        && !head.contains(['?', '!', ';'])
        && (has_time(head) || has_year(head))
}

/// `12:34` or `12.34` (a time), not part of a longer number.
fn has_time(s: &str) -> bool {
    let b = s.as_bytes();
    (1..b.len().saturating_sub(2)).any(|i| {
        matches!(b[i], b':' | b'.')
            && b[i - 1].is_ascii_digit()
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
            && b.get(i + 3).is_none_or(|c| !c.is_ascii_digit())
            && (i < 3 || !b[i - 3].is_ascii_digit() || !b[i - 2].is_ascii_digit())
    })
}

/// A year, 19xx or 20xx, standing alone.
fn has_year(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(3)).any(|i| {
        (b[i..].starts_with(b"19") || b[i..].starts_with(b"20"))
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && (i == 0 || !b[i - 1].is_ascii_digit())
            && b.get(i + 4).is_none_or(|c| !c.is_ascii_digit())
    })
}

/// A line ending with ':' that carries an address or a date: a quote header
/// in a language we don't know ("26.06.2014, 14:41, "A" <a@b.c>:"). Only
/// trusted right above a trailing quote block.
fn looks_like_unknown_attribution(line: &str) -> bool {
    if line.len() > MAX_HEADER_LEN || !ends_with_colon(line) {
        return false;
    }
    line.contains('@') || has_time_or_at(line) || has_year(line)
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
    "mensagem reencaminhada",
    "oprindelig besked",
    "original besked",
    "videresendt besked",
    "původní zpráva",
    "přeposlaná zpráva",
    "pôvodná správa",
    "preposlaná správa",
    "orijinal mesaj",
    "özgün ileti",
    "iletilen mesaj",
    "eredeti üzenet",
    "továbbított üzenet",
    "mesaj original",
    "mesaj redirecționat",
    "mesaj redirectionat",
    "αρχικό μήνυμα",
    "προωθημένο μήνυμα",
    "원본 메시지",
    "전달된 메시지",
    "оригінальне повідомлення",
    "вихідне повідомлення",
    "переслане повідомлення",
    "пересланное сообщение",
    "оригинално съобщение",
    "препратено съобщение",
    "الرسالة الأصلية",
    "رسالة معاد توجيهها",
    "הודעה מקורית",
    "הודעה שהועברה",
    "pesan asli",
    "pesan terusan",
    "pesan yang diteruskan",
    "thư gốc",
    "thư đã chuyển tiếp",
    "missatge original",
    "missatge reenviat",
    "izvorna poruka",
    "prosljeđena poruka",
    "originalna poruka",
    "algne kiri",
    "originali žinutė",
    "转发邮件",
    "轉寄的郵件",
    "転送メッセージ",
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
        // French webmails, and more languages: cs/sk, tr, hu, ro, el, ko,
        // uk, ar, he, ca, id, vi, hr
        ("message du", Date),
        ("sujet", Subject),
        ("copie à", Cc),
        ("copie", Cc),
        ("komu", To),
        ("předmět", Subject),
        ("odesláno", Date),
        ("predmet", Subject),
        ("odoslané", Date),
        ("kimden", From),
        ("kime", To),
        ("konu", Subject),
        ("tarih", Date),
        ("gönderildi", Date),
        ("bilgi", Cc),
        ("feladó", From),
        ("címzett", To),
        ("tárgy", Subject),
        ("elküldve", Date),
        ("dátum", Date),
        ("másolatot kap", Cc),
        ("de la", From),
        ("către", To),
        ("catre", To),
        ("subiect", Subject),
        ("trimis", Date),
        ("από", From),
        ("προς", To),
        ("θέμα", Subject),
        ("στάλθηκε", Date),
        ("ημερομηνία", Date),
        ("κοιν", Cc),
        ("보낸 사람", From),
        ("받는 사람", To),
        ("제목", Subject),
        ("보낸 날짜", Date),
        ("참조", Cc),
        ("від", From),
        ("тема листа", Subject),
        ("надіслано", Date),
        ("من", From),
        ("إلى", To),
        ("الموضوع", Subject),
        ("التاريخ", Date),
        ("تاريخ الإرسال", Date),
        ("מאת", From),
        ("אל", To),
        ("נושא", Subject),
        ("נשלח", Date),
        ("תאריך", Date),
        ("per a", To),
        ("enviat", Date),
        ("enviat el", Date),
        ("tema", Subject),
        ("dari", From),
        ("kepada", To),
        ("perihal", Subject),
        ("subjek", Subject),
        ("terkirim", Date),
        ("tanggal", Date),
        ("từ", From),
        ("đến", To),
        ("chủ đề", Subject),
        ("ngày gửi", Date),
        ("šalje", From),
        ("prima", To),
        ("poslano", Date),
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
    t == "--"
        || t == "__"
        || (t.len() >= 8 && t.len() <= 200 && t.trim_start().chars().all(|c| c == '_'))
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
    "sent from typeapp",
    "sent from spark",
    "sent from bluemail",
    "sent from edison",
    "sent from newton",
    "sent from airmail",
    "sent from polymail",
    "sent from superhuman",
    "sent from the all-new aol app",
    "sent via blackberry",
    "sent via the samsung",
    "sent with blackberry",
    "sent with proton",
    "sent using ",
    "get outlook for ",
    "envoyé de mon ",
    "envoyé depuis mon ",
    "envoyé à partir de ",
    "envoyé avec ",
    "obtenir outlook pour ",
    "télécharger outlook pour ",
    "von meinem ",
    "gesendet von meinem ",
    "gesendet von outlook",
    "gesendet mit ",
    "outlook für ios beziehen",
    "outlook für android beziehen",
    "outlook für ios herunterladen",
    "outlook für android herunterladen",
    "enviado desde mi ",
    "enviado de mi ",
    "enviado desde outlook",
    "obtener outlook para ",
    "enviado do meu ",
    "enviado a partir do ",
    "enviado do outlook",
    "enviado do email ",
    "obter o outlook para ",
    "obtenha o outlook para ",
    "inviato da ",
    "inviato dal mio ",
    "inviato con ",
    "scarica outlook per ",
    "verzonden vanaf mijn ",
    "verzonden met ",
    "verstuurd vanaf mijn ",
    "verzonden vanuit ",
    "outlook voor ios downloaden",
    "outlook voor android downloaden",
    "wysłane z ",
    "wysłano z ",
    "skickat från min ",
    "skickat från ",
    "sendt fra min ",
    "sendt fra ",
    "lähetetty iphonesta",
    "lähetetty laitteesta",
    "lähetetty ",
    "odesláno z ",
    "odoslané z ",
    "elküldve az ",
    "trimis de pe ",
    "trimis din ",
    "αποστολή από ",
    "отправлено с ",
    "отправлено из ",
    "надіслано з ",
    "изпратено от ",
    "enviat des del meu ",
    "enviat des de ",
    "dikirim dari ",
    "gửi từ ",
    "poslano s mog ",
    "poslano z ",
    "iphoneから送信",
    "发自我的",
    "从我的",
    "從我的",
    "傳送自我的",
];

/// One-line signatures that end with their verb: "iPhone'umdan
/// gönderildi", "iPhone에서 보냄", "Von meinem Mobilgerät gesendet" (the
/// opening "von meinem" is above), with a device named.
const MOBILE_SUFFIXES: &[&str] = &[
    "gönderildi",
    "에서 보냄",
    "에서 보냄.",
    "から送信",
    "发送",
    "傳送",
    "gesendet",
    "verzonden",
    "wysłane",
];

const DEVICES: &[&str] = &[
    "iphon",
    "ipad",
    "android",
    "mobil",
    "móvil",
    "cellulare",
    "smartphone",
    "tablet",
    "samsung",
    "galaxy",
    "outlook",
    "blackberry",
    "huawei",
    "xiaomi",
    "pixel",
    "telefon",
    "phone",
    "手机",
    "携帯",
    "모바일",
];

/// Mail apps named in their signatures.
const MAIL_APPS: &[&str] = &[
    "mail for ",
    "mail app",
    "yahoo",
    "gmail",
    "aol",
    "proton",
    "typeapp",
    "spark",
    "bluemail",
    "edison",
    "newton",
    "airmail",
    "polymail",
    "superhuman",
    "zoho",
    "web.de",
    "gmx",
    "t-online",
];

/// Possessives before the device: "my", "mon", "meinem", "mi", "meu" …
const POSSESSIVES: &[&str] = &[
    " my ", " mon ", " meinem ", " mi ", " meu ", " mijn ", " min ", " mio ", "我的",
];

/// A one-line signature that names a device or a mail app (or "my …"):
/// sure enough to end the answer where it stands, whatever follows.
fn is_device_signature(line: &str) -> bool {
    if !is_mobile_signature(line) {
        return false;
    }
    let n = normalize(line);
    DEVICES.iter().any(|d| n.contains(d))
        || MAIL_APPS.iter().any(|a| n.contains(a))
        || POSSESSIVES.iter().any(|p| n.contains(p))
}

/// `Get Outlook for iOS<https://aka.ms/o0ukef>`: the link glued at the end.
fn without_trailing_link(n: &str) -> &str {
    match n.rfind('<') {
        Some(at) if n.ends_with('>') && n[at..].contains("://") => n[..at].trim_end(),
        _ => n,
    }
}

fn is_mobile_signature(line: &str) -> bool {
    if line.len() > 160 {
        return false;
    }
    let n = normalize(line);
    let n = without_trailing_link(&n);
    let n = n.strip_suffix('.').unwrap_or(n);
    let words = n.split(' ').count();
    // Samsung's "Sent from my Samsung Galaxy S23, an AT&T 5G smartphone"
    if (n.starts_with("sent from my samsung") || n.starts_with("sent from my galaxy"))
        && words <= 14
        && !n.contains(['!', '?', ';'])
    {
        return true;
    }
    if words > 8 || n.contains([',', ';', '!', '?']) {
        return false;
    }
    MOBILE_SIGNATURES.iter().any(|p| n.starts_with(p))
        || (MOBILE_SUFFIXES.iter().any(|s| n.ends_with(s))
            && DEVICES.iter().any(|d| n.contains(d))
            && words <= 6)
}

/// Closing words a signature block opens with, alone on their line:
/// "Regards,", "Cordialement", "Mit freundlichen Grüßen" … Not "Thanks"
/// (as often the end of the answer itself) nor "Sincerely," (a form
/// letter's signed closing, kept by upstream's `email_not_a_signature`).
const VALEDICTIONS: &[&str] = &[
    "regards",
    "best regards",
    "kind regards",
    "warm regards",
    "warmest regards",
    "many regards",
    "with regards",
    "with kind regards",
    "with best regards",
    "cordialement",
    "bien cordialement",
    "très cordialement",
    "salutations",
    "meilleures salutations",
    "sincères salutations",
    "bien à vous",
    "mit freundlichen grüßen",
    "mit freundlichen grüssen",
    "freundliche grüße",
    "freundliche grüsse",
    "beste grüße",
    "viele grüße",
    "liebe grüße",
    "mfg",
    "saludos",
    "un saludo",
    "saludos cordiales",
    "atentamente",
    "cordiali saluti",
    "distinti saluti",
    "cordialmente",
    "met vriendelijke groet",
    "met vriendelijke groeten",
    "vriendelijke groet",
    "vriendelijke groeten",
    "atenciosamente",
    "cumprimentos",
    "melhores cumprimentos",
    "pozdrawiam",
    "z poważaniem",
    "z wyrazami szacunku",
    "с уважением",
    "с наилучшими пожеланиями",
    "з повагою",
    "med vänliga hälsningar",
    "vänliga hälsningar",
    "med venlig hilsen",
    "venlig hilsen",
    "med vennlig hilsen",
    "vennlig hilsen",
    "mvh",
    "ystävällisin terveisin",
    "terveisin",
    "s pozdravem",
    "s pozdravom",
    "saygılarımla",
    "üdvözlettel",
    "cu stimă",
    "cu respect",
    "με εκτίμηση",
    "salam",
    "hormat saya",
    "trân trọng",
];

/// A closing ("Regards,") and at most a few short lines under it (name,
/// title, company) up to `end`: where that signature starts.
fn valediction_signature(lines: &[Line<'_>], kinds: &[Kind], end: usize) -> Option<usize> {
    let mut short = 0;
    let mut i = end;
    while i > 0 {
        i -= 1;
        match kinds[i] {
            Kind::Blank => continue,
            Kind::Text => {}
            _ => return None,
        }
        let t = lines[i].text.as_ref();
        if t.len() <= 60 {
            let n = normalize(t);
            let n = n.trim_end_matches([',', '.', '!', ' ']);
            if VALEDICTIONS.contains(&n) {
                // the answer must be above it
                return (0..i).any(|j| kinds[j] == Kind::Text).then_some(i);
            }
        }
        short += 1;
        if short > 5 || t.len() > 60 {
            return None;
        }
    }
    None
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
