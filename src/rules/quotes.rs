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
//! reply containers, then the same rules apply. The wording in each
//! language (quote headers, history markers, signatures, sign-offs) is in
//! [`phrases`], apart from the rules that read it.

use std::borrow::Cow;

mod html;
mod phrases;
use phrases::{
    BARE_VERBS, DEVICES, HEADER_KEYS, HISTORY_MARKERS, MAIL_APPS, MID_VERBS, MOBILE_SIGNATURES,
    MOBILE_SUFFIXES, OPENER_HEADERS, POSSESSIVES, TAIL_VERBS, VALEDICTIONS, VERB_STEMS,
};

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
