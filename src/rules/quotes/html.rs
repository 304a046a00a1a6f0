//! HTML part → text lines for the quote rules.
//!
//! A tolerant tokenizer builds a shallow tree (depth capped, implied end
//! tags for `p`/`li`/`td`…), then a renderer writes it as text:
//! `<blockquote>` as `> ` lines, attribution containers (Gmail's
//! `gmail_attr`, Thunderbird's `moz-cite-prefix`) marked as quote headers,
//! a "-- " line before signature containers, and a stop at the reply
//! containers after which everything is history (Outlook's `divRplyFwdMsg`
//! and `appendonsend`, the border-top "From:" div, Hotmail's and Zimbra's
//! `<hr>`, Yahoo's `yahoo_quoted`, Lotus Notes' `domino-section`,
//! Thunderbird's forward container). Every
//! step is linear in the input; nothing recurses deeper than the cap.

use std::borrow::Cow;

use super::{HeaderField, header_field, is_blank};

pub(super) struct Rendered {
    pub lines: Vec<RenderedLine>,
    /// Text was dropped at a reply container.
    pub cut_dropped_text: bool,
}

pub(super) struct RenderedLine {
    pub text: String,
    pub attribution: bool,
}

pub(super) fn render(html: &str) -> Rendered {
    let tree = parse(html);
    let mut renderer = Renderer::new(&tree);
    renderer.node(0);
    renderer.finish()
}

/// Deeper elements are kept as leaves: bounds recursion on hostile input.
const MAX_DEPTH: usize = 128;

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "basefont", "bgsound", "frame", "keygen",
];

/// Elements whose content is not markup; it is skipped, never shown.
const RAW_TEXT: &[&str] = &[
    "script", "style", "title", "textarea", "xmp", "iframe", "noembed", "noframes",
];

/// Elements that close an open `<p>`.
const CLOSES_P: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "div",
    "dl",
    "fieldset",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "ul",
];

/// Elements rendered on their own lines.
const BLOCK: &[&str] = &[
    "address",
    "article",
    "aside",
    "body",
    "caption",
    "center",
    "dd",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "html",
    "legend",
    "main",
    "menu",
    "nav",
    "ol",
    "option",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
];

/// Elements never rendered.
const SKIPPED: &[&str] = &["head", "script", "style", "title", "template", "xml"];

struct Tree {
    nodes: Vec<Node>,
}

struct Node {
    data: Data,
    children: Vec<usize>,
}

enum Data {
    Element(Element),
    Text(String),
}

struct Element {
    name: String,
    attrs: Vec<(String, String)>,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Class tokens, also when Outlook on the web prefixed them with `x_`.
    fn has_class(&self, wanted: &[&str]) -> bool {
        self.attr("class").is_some_and(|classes| {
            classes.split_ascii_whitespace().any(|c| {
                let c = c.strip_prefix("x_").unwrap_or(c);
                wanted.iter().any(|w| c.eq_ignore_ascii_case(w))
            })
        })
    }

    fn id_is(&self, wanted: &[&str]) -> bool {
        self.attr("id").is_some_and(|id| {
            let id = id.trim();
            let id = id.strip_prefix("x_").unwrap_or(id);
            wanted.iter().any(|w| id.eq_ignore_ascii_case(w))
        })
    }

    /// The `style` attribute, lower-cased and without spaces.
    fn style(&self) -> String {
        self.attr("style")
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    }
}

impl Tree {
    fn element(&self, idx: usize) -> Option<&Element> {
        match &self.nodes[idx].data {
            Data::Element(e) => Some(e),
            Data::Text(_) => None,
        }
    }

    fn name_is(&self, idx: usize, name: &str) -> bool {
        self.element(idx).is_some_and(|e| e.name == name)
    }

    fn append(&mut self, parent: usize, data: Data) -> usize {
        let idx = self.nodes.len();
        self.nodes.push(Node {
            data,
            children: Vec::new(),
        });
        self.nodes[parent].children.push(idx);
        idx
    }

    fn open(
        &mut self,
        stack: &mut Vec<usize>,
        name: String,
        attrs: Vec<(String, String)>,
        self_closing: bool,
    ) {
        match name.as_str() {
            "li" => self.close_implied(stack, &["li"], &["ul", "ol"]),
            "dt" | "dd" => self.close_implied(stack, &["dt", "dd"], &["dl"]),
            "tr" => self.close_implied(
                stack,
                &["tr", "td", "th"],
                &["table", "tbody", "thead", "tfoot"],
            ),
            "td" | "th" => self.close_implied(stack, &["td", "th"], &["tr", "table"]),
            "option" => self.close_implied(stack, &["option"], &["select"]),
            n if CLOSES_P.contains(&n)
                && stack.len() > 1
                && self.name_is(*stack.last().unwrap_or(&0), "p") =>
            {
                stack.pop();
            }
            _ => {}
        }
        let is_void = VOID.contains(&name.as_str());
        let parent = *stack.last().unwrap_or(&0);
        let idx = self.append(parent, Data::Element(Element { name, attrs }));
        if !is_void && !self_closing && stack.len() < MAX_DEPTH {
            stack.push(idx);
        }
    }

    /// Closes an open `names` element up to the nearest `scope` element.
    fn close_implied(&self, stack: &mut Vec<usize>, names: &[&str], scope: &[&str]) {
        for pos in (1..stack.len()).rev() {
            let Some(e) = self.element(stack[pos]) else {
                break;
            };
            if names.contains(&e.name.as_str()) {
                stack.truncate(pos);
                return;
            }
            if scope.contains(&e.name.as_str()) {
                return;
            }
        }
    }

    fn close(&mut self, stack: &mut Vec<usize>, name: &str) {
        if name == "br" {
            // `</br>` is a line break in every browser.
            self.open(stack, "br".to_string(), Vec::new(), true);
            return;
        }
        if let Some(pos) = (1..stack.len())
            .rev()
            .find(|&p| self.name_is(stack[p], name))
        {
            stack.truncate(pos);
        }
    }
}

enum Token {
    Start {
        name: String,
        attrs: Vec<(String, String)>,
        self_closing: bool,
    },
    End(String),
    Skip,
}

fn parse(html: &str) -> Tree {
    let b = html.as_bytes();
    let mut tree = Tree {
        nodes: vec![Node {
            data: Data::Element(Element {
                name: "#root".to_string(),
                attrs: Vec::new(),
            }),
            children: Vec::new(),
        }],
    };
    let mut stack = vec![0usize];
    let mut text_start = 0;
    let mut i = 0;
    while let Some(offset) = b[i..].iter().position(|&c| c == b'<') {
        let lt = i + offset;
        let Some((token, after)) = read_markup(html, lt) else {
            i = lt + 1; // a literal '<'
            continue;
        };
        if text_start < lt {
            add_text(&mut tree, &stack, &html[text_start..lt]);
        }
        let mut next = after;
        match token {
            Token::Start {
                name,
                attrs,
                self_closing,
            } => {
                if RAW_TEXT.contains(&name.as_str()) {
                    if !self_closing {
                        next = skip_raw_text(b, after, &name);
                    }
                    tree.open(&mut stack, name, attrs, true);
                } else {
                    tree.open(&mut stack, name, attrs, self_closing);
                }
            }
            Token::End(name) => tree.close(&mut stack, &name),
            Token::Skip => {}
        }
        i = next;
        text_start = next;
    }
    if text_start < b.len() {
        add_text(&mut tree, &stack, &html[text_start..]);
    }
    tree
}

fn add_text(tree: &mut Tree, stack: &[usize], raw: &str) {
    let parent = *stack.last().unwrap_or(&0);
    tree.append(parent, Data::Text(decode_entities(raw).into_owned()));
}

fn find_byte(b: &[u8], from: usize, byte: u8) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|&c| c == byte)
        .map(|p| from + p)
}

fn find_bytes(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let hay = b.get(from..)?;
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b':' | b'_' | b'.')
}

/// Reads the markup at `lt` (a '<'); `None` when the '<' is plain text.
/// Returns the token and the offset just after it.
fn read_markup(html: &str, lt: usize) -> Option<(Token, usize)> {
    let b = html.as_bytes();
    let n = b.len();
    let next = *b.get(lt + 1)?;
    let to_gt = |from: usize| find_byte(b, from, b'>').map_or(n, |p| p + 1);
    if b[lt + 1..].starts_with(b"!--") {
        let end = find_bytes(b, lt + 4, b"-->").map_or(n, |p| p + 3);
        return Some((Token::Skip, end));
    }
    match next {
        b'!' | b'?' => Some((Token::Skip, to_gt(lt + 2))),
        b'/' => {
            let start = lt + 2;
            if !b.get(start).is_some_and(u8::is_ascii_alphabetic) {
                return Some((Token::Skip, to_gt(start)));
            }
            let mut end = start;
            while end < n && is_name_byte(b[end]) {
                end += 1;
            }
            Some((
                Token::End(html[start..end].to_ascii_lowercase()),
                to_gt(end),
            ))
        }
        c if c.is_ascii_alphabetic() => {
            let start = lt + 1;
            let mut p = start;
            while p < n && is_name_byte(b[p]) {
                p += 1;
            }
            let name = html[start..p].to_ascii_lowercase();
            let (attrs, self_closing, end) = read_attributes(html, p);
            Some((
                Token::Start {
                    name,
                    attrs,
                    self_closing,
                },
                end,
            ))
        }
        _ => None,
    }
}

/// Attributes from `p` to the closing '>': (attributes, self-closing, end).
fn read_attributes(html: &str, mut p: usize) -> (Vec<(String, String)>, bool, usize) {
    let b = html.as_bytes();
    let n = b.len();
    let mut attrs = Vec::new();
    let mut slash = false;
    loop {
        while p < n && (b[p].is_ascii_whitespace() || b[p] == b'/') {
            slash = b[p] == b'/';
            p += 1;
        }
        if p >= n {
            return (attrs, slash, n);
        }
        if b[p] == b'>' {
            return (attrs, slash, p + 1);
        }
        slash = false;
        let name_start = p;
        while p < n && !b[p].is_ascii_whitespace() && !matches!(b[p], b'=' | b'>' | b'/') {
            p += 1;
        }
        if p == name_start {
            p += 1; // a stray '='
            continue;
        }
        let name = html[name_start..p].to_ascii_lowercase();
        while p < n && b[p].is_ascii_whitespace() {
            p += 1;
        }
        let mut value = String::new();
        if p < n && b[p] == b'=' {
            p += 1;
            while p < n && b[p].is_ascii_whitespace() {
                p += 1;
            }
            if p < n && (b[p] == b'"' || b[p] == b'\'') {
                let quote = b[p];
                let value_end = find_byte(b, p + 1, quote).unwrap_or(n);
                value = decode_entities(&html[p + 1..value_end]).into_owned();
                p = (value_end + 1).min(n);
            } else {
                let value_start = p;
                while p < n && !b[p].is_ascii_whitespace() && b[p] != b'>' {
                    p += 1;
                }
                value = decode_entities(&html[value_start..p]).into_owned();
            }
        }
        attrs.push((name, value));
    }
}

/// The offset after `</name …>`, or the end of input.
fn skip_raw_text(b: &[u8], from: usize, name: &str) -> usize {
    let mut i = from;
    while let Some(lt) = find_byte(b, i, b'<') {
        let close = lt + 2;
        if b.get(lt + 1) == Some(&b'/')
            && b.get(close..close + name.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(name.as_bytes()))
            && !b.get(close + name.len()).is_some_and(|&c| is_name_byte(c))
        {
            return find_byte(b, close, b'>').map_or(b.len(), |p| p + 1);
        }
        i = lt + 1;
    }
    b.len()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    None,
    Line,
    Paragraph,
}

struct Renderer<'t> {
    tree: &'t Tree,
    lines: Vec<RenderedLine>,
    /// The line being written, without its quote prefix.
    cur: String,
    cur_depth: usize,
    cur_attribution: bool,
    pending: Break,
    space: bool,
    quote_depth: usize,
    attribution: usize,
    /// Inside Gmail's quote container, before its first blockquote: the
    /// attribution of older Gmail versions, which have no `gmail_attr`.
    gmail_prelude: bool,
    pre: usize,
    /// A reply container was reached: everything from here is history.
    stopped: bool,
    cut_dropped_text: bool,
}

impl<'t> Renderer<'t> {
    fn new(tree: &'t Tree) -> Self {
        Renderer {
            tree,
            lines: Vec::new(),
            cur: String::new(),
            cur_depth: 0,
            cur_attribution: false,
            pending: Break::None,
            space: false,
            quote_depth: 0,
            attribution: 0,
            gmail_prelude: false,
            pre: 0,
            stopped: false,
            cut_dropped_text: false,
        }
    }

    fn finish(mut self) -> Rendered {
        self.end_line();
        Rendered {
            lines: self.lines,
            cut_dropped_text: self.cut_dropped_text,
        }
    }

    fn node(&mut self, idx: usize) {
        let tree = self.tree;
        match &tree.nodes[idx].data {
            Data::Text(t) => self.text(t),
            Data::Element(e) => self.element(idx, e),
        }
    }

    fn children(&mut self, idx: usize) {
        let tree = self.tree;
        for &child in &tree.nodes[idx].children {
            self.node(child);
        }
    }

    fn element(&mut self, idx: usize, e: &Element) {
        let name = e.name.as_str();
        if SKIPPED.contains(&name) {
            return;
        }
        if !self.stopped && self.is_reply_container(idx, e) {
            self.stopped = true;
        }
        match name {
            "br" => self.hard_break(),
            "hr" => self.brk(Break::Paragraph),
            "img" => {}
            "blockquote" => {
                self.brk(Break::Line);
                if is_indent(e) {
                    self.children(idx);
                } else {
                    self.gmail_prelude = false;
                    self.quote_depth += 1;
                    self.children(idx);
                    self.quote_depth -= 1;
                }
                self.brk(Break::Line);
            }
            "li" => {
                self.brk(Break::Line);
                self.text("- ");
                self.children(idx);
                self.brk(Break::Line);
            }
            "td" | "th" => {
                self.children(idx);
                self.space = true;
            }
            "pre" => {
                self.brk(Break::Paragraph);
                self.pre += 1;
                self.children(idx);
                self.pre -= 1;
                self.brk(Break::Paragraph);
            }
            "a" => {
                self.children(idx);
                self.link_target(idx, e);
            }
            _ => {
                let block = if !BLOCK.contains(&name) {
                    Break::None
                } else if is_paragraph(e) {
                    Break::Paragraph
                } else {
                    Break::Line
                };
                self.brk(block);
                self.container(idx, e);
                self.brk(block);
            }
        }
    }

    /// Children of an element that may be an attribution, Gmail quote or
    /// signature container.
    fn container(&mut self, idx: usize, e: &Element) {
        if e.has_class(&["gmail_attr", "moz-cite-prefix"]) {
            self.brk(Break::Line);
            self.attribution += 1;
            self.children(idx);
            self.attribution -= 1;
            self.brk(Break::Line);
        } else if e.has_class(&["gmail_quote", "gmail_quote_container"]) {
            // Only a container that holds the quote has an attribution:
            // some mails keep their own text in a bare gmail_quote div.
            let tree = self.tree;
            let holds_quote = tree.nodes[idx]
                .children
                .iter()
                .any(|&c| tree.name_is(c, "blockquote"));
            let saved = self.gmail_prelude;
            self.gmail_prelude = holds_quote;
            self.children(idx);
            self.gmail_prelude = saved;
        } else if is_signature_container(e) {
            let first = first_text(self.tree, idx);
            if !first.trim_start().starts_with("--") && subtree_has_text(self.tree, idx) {
                self.brk(Break::Line);
                self.text("--");
                self.brk(Break::Line);
            }
            self.children(idx);
        } else {
            self.children(idx);
        }
    }

    fn is_reply_container(&self, idx: usize, e: &Element) -> bool {
        is_reply_container(self.tree, idx, e)
    }
}

/// Outlook, Hotmail, Zimbra, Yahoo and Thunderbird containers after
/// which everything is the quoted or forwarded original.
fn is_reply_container(tree: &Tree, idx: usize, e: &Element) -> bool {
    if e.id_is(&[
        "divRplyFwdMsg",
        "appendonsend",
        "OLK_SRC_BODY_SECTION",
        "mail-editor-reference-message-container",
    ]) || e.has_class(&[
        "moz-forward-container",
        "yahoo_quoted",
        "OutlookMessageHeader",
        "domino-section",
    ]) {
        return true;
    }
    if e.name == "hr" {
        return e.id_is(&["stopSpelling", "zwchr"]);
    }
    // Outlook's reply header: a div with a top border whose text opens
    // with "From:" (in the reader's language).
    (e.name == "div" || e.name == "p") && {
        let style = e.style();
        style.contains("border-top")
            && !style.contains("border-top:none")
            && header_field(&first_text(tree, idx)) == Some(HeaderField::From)
    }
}

impl Renderer<'_> {
    /// Appends `<url>` after a link whose text does not show it.
    fn link_target(&mut self, idx: usize, e: &Element) {
        let Some(href) = e.attr("href").map(str::trim) else {
            return;
        };
        let lower = href.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return;
        }
        let label = first_text(self.tree, idx);
        let bare = |s: &str| {
            s.trim()
                .trim_end_matches('/')
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .to_ascii_lowercase()
        };
        if label.trim().is_empty() || label.contains(href) || bare(&label) == bare(href) {
            return;
        }
        self.text(" <");
        self.text(href);
        self.text(">");
    }

    fn brk(&mut self, b: Break) {
        if !self.stopped {
            self.pending = self.pending.max(b);
        }
    }

    fn flush_pending(&mut self) {
        let pending = std::mem::replace(&mut self.pending, Break::None);
        if pending >= Break::Line {
            self.end_line();
        }
        if pending == Break::Paragraph && self.lines.last().is_some_and(|l| !l.text.is_empty()) {
            self.push_line(String::new(), 0, false);
        }
    }

    fn end_line(&mut self) {
        if !self.cur.is_empty() {
            let text = std::mem::take(&mut self.cur);
            self.push_line(text, self.cur_depth, self.cur_attribution);
        }
        self.space = false;
    }

    fn hard_break(&mut self) {
        if self.stopped {
            return;
        }
        self.flush_pending();
        let depth = if self.cur.is_empty() {
            self.quote_depth
        } else {
            self.cur_depth
        };
        let attribution = !self.cur.is_empty() && self.cur_attribution;
        let text = std::mem::take(&mut self.cur);
        self.push_line(text, depth, attribution);
        self.space = false;
    }

    fn push_line(&mut self, content: String, depth: usize, attribution: bool) {
        let mut text = "> ".repeat(depth);
        text.extend(content.chars().map(|c| if c == '\u{a0}' { ' ' } else { c }));
        let trimmed = text.trim_end().len();
        text.truncate(trimmed);
        // One blank line is enough, whatever mix of <br> and <p> made it.
        if text.is_empty() && self.lines.last().is_some_and(|l| l.text.is_empty()) {
            return;
        }
        self.lines.push(RenderedLine { text, attribution });
    }

    fn text(&mut self, t: &str) {
        if self.stopped {
            self.cut_dropped_text |= !is_blank(t);
            return;
        }
        for c in t.chars() {
            if self.pre > 0 {
                match c {
                    '\n' => self.hard_break(),
                    '\r' => {}
                    c => self.put(c),
                }
            } else if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C') {
                self.space = true;
            } else {
                self.put(c);
            }
        }
    }

    fn put(&mut self, c: char) {
        if self.pending != Break::None {
            self.flush_pending();
        }
        if self.cur.is_empty() {
            self.cur_depth = self.quote_depth;
            self.cur_attribution = self.attribution > 0 || self.gmail_prelude;
        } else if self.space {
            self.cur.push(' ');
        }
        self.space = false;
        self.cur.push(c);
    }
}

/// Gmail's "indent" is a borderless blockquote, not a quote.
fn is_indent(e: &Element) -> bool {
    e.style().contains("border:none")
}

/// A `<p>` stands apart by a blank line, except Word's `MsoNormal`
/// paragraphs, which Outlook writes one per line.
fn is_paragraph(e: &Element) -> bool {
    matches!(
        e.name.as_str(),
        "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul" | "ol" | "dl"
    ) && !e
        .attr("class")
        .is_some_and(|c| c.split_ascii_whitespace().any(|c| c.starts_with("Mso")))
}

fn is_signature_container(e: &Element) -> bool {
    e.has_class(&["gmail_signature", "moz-signature"])
        || e.id_is(&["Signature"])
        || e.attr("data-smartmail") == Some("gmail_signature")
        || e.attr("data-signatureblock") == Some("true")
}

/// The HTML of a reply without its quoted history, as HTML (not yet
/// sanitized: the caller's sanitizer re-parses it). Removed: Gmail's quote
/// container and attribution, `<blockquote>` quotes (Apple Mail,
/// Thunderbird: not Gmail's borderless indent), Thunderbird's
/// `moz-cite-prefix`, signature containers, Guichet's own header and
/// history blocks (`guichet-header`, `guichet-earlier`), and everything
/// from a reply container on (Outlook desktop and web, Yahoo, Zoho,
/// ProtonMail, Thunderbird's forward, Lotus Notes). `keep_quotes` keeps the
/// `<blockquote>`s outside those containers (an inline reply).
pub(super) fn without_history(html: &str, keep_quotes: bool) -> String {
    write(html, Some(keep_quotes))
}

/// The HTML as the tolerant tree reads it (nesting capped), nothing removed.
pub(super) fn bounded(html: &str) -> String {
    write(html, None)
}

fn write(html: &str, remove: Option<bool>) -> String {
    let tree = parse(html);
    let mut w = HtmlWriter {
        tree: &tree,
        out: String::with_capacity(html.len().min(1 << 20)),
        stopped: false,
        keep_quotes: remove.unwrap_or(true),
        whole: remove.is_none(),
    };
    w.children(0);
    w.out
}

struct HtmlWriter<'t> {
    tree: &'t Tree,
    out: String,
    stopped: bool,
    keep_quotes: bool,
    /// Remove nothing (only scripts and styles, which the sanitizer drops).
    whole: bool,
}

impl HtmlWriter<'_> {
    fn children(&mut self, idx: usize) {
        let tree = self.tree;
        for &child in &tree.nodes[idx].children {
            if self.stopped {
                return;
            }
            match &tree.nodes[child].data {
                Data::Text(t) => escape_into(&mut self.out, t),
                Data::Element(e) => self.element(child, e),
            }
        }
    }

    fn element(&mut self, idx: usize, e: &Element) {
        let name = e.name.as_str();
        if SKIPPED.contains(&name) || RAW_TEXT.contains(&name) {
            return;
        }
        if self.whole {
            return self.write_element(idx, e);
        }
        if is_reply_container(self.tree, idx, e)
            || e.has_class(&["zmail_extra", "zmail_extra_hr", "protonmail_quote"])
        {
            self.stopped = true;
            return;
        }
        let quote_container = e.has_class(&["gmail_quote", "gmail_quote_container"])
            && self.tree.nodes[idx]
                .children
                .iter()
                .any(|&c| self.tree.name_is(c, "blockquote"));
        if quote_container
            || e.has_class(&[
                "gmail_attr",
                "moz-cite-prefix",
                "guichet-header",
                "guichet-earlier",
            ])
            || is_signature_container(e)
            || (name == "blockquote" && !is_indent(e) && !self.keep_quotes)
        {
            return;
        }
        self.write_element(idx, e);
    }

    fn write_element(&mut self, idx: usize, e: &Element) {
        let name = e.name.as_str();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in &e.attrs {
            if k.is_empty() || !k.bytes().all(is_name_byte) {
                continue;
            }
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_into(&mut self.out, v);
            self.out.push('"');
        }
        self.out.push('>');
        if VOID.contains(&name) {
            return;
        }
        self.children(idx);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Visiting limits for the look-ahead helpers, which run once per
/// candidate element and must stay cheap on deep or wide trees.
const LOOKAHEAD_NODES: usize = 200;
const LOOKAHEAD_CHARS: usize = 120;

/// The start of an element's text, whitespace collapsed.
fn first_text(tree: &Tree, idx: usize) -> String {
    let mut out = String::new();
    let mut budget = LOOKAHEAD_NODES;
    let mut todo = vec![idx];
    while let Some(i) = todo.pop() {
        if budget == 0 || out.len() >= LOOKAHEAD_CHARS {
            break;
        }
        budget -= 1;
        match &tree.nodes[i].data {
            Data::Text(t) => {
                for word in t.split_whitespace() {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(word);
                    if out.len() >= LOOKAHEAD_CHARS {
                        break;
                    }
                }
            }
            Data::Element(e) if SKIPPED.contains(&e.name.as_str()) => {}
            Data::Element(_) => todo.extend(tree.nodes[i].children.iter().rev()),
        }
    }
    out
}

/// Whether an element shows any text; `true` when unsure (too large).
fn subtree_has_text(tree: &Tree, idx: usize) -> bool {
    let mut budget = LOOKAHEAD_NODES;
    let mut todo = vec![idx];
    while let Some(i) = todo.pop() {
        if budget == 0 {
            return true;
        }
        budget -= 1;
        match &tree.nodes[i].data {
            Data::Text(t) if !is_blank(t) => return true,
            Data::Text(_) => {}
            Data::Element(e) if SKIPPED.contains(&e.name.as_str()) => {}
            Data::Element(_) => todo.extend(tree.nodes[i].children.iter()),
        }
    }
    false
}

/// Named character references a mail is likely to use.
const ENTITIES: &[(&str, char)] = &[
    ("nbsp", '\u{a0}'),
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("copy", '©'),
    ("reg", '®'),
    ("trade", '™'),
    ("hellip", '…'),
    ("mdash", '—'),
    ("ndash", '–'),
    ("lsquo", '‘'),
    ("rsquo", '’'),
    ("sbquo", '‚'),
    ("ldquo", '“'),
    ("rdquo", '”'),
    ("bdquo", '„'),
    ("laquo", '«'),
    ("raquo", '»'),
    ("lsaquo", '‹'),
    ("rsaquo", '›'),
    ("euro", '€'),
    ("pound", '£'),
    ("yen", '¥'),
    ("cent", '¢'),
    ("curren", '¤'),
    ("deg", '°'),
    ("middot", '·'),
    ("bull", '•'),
    ("times", '×'),
    ("divide", '÷'),
    ("para", '¶'),
    ("sect", '§'),
    ("shy", '\u{ad}'),
    ("ensp", ' '),
    ("emsp", ' '),
    ("thinsp", ' '),
    ("zwnj", '\u{200c}'),
    ("zwj", '\u{200d}'),
    ("lrm", '\u{200e}'),
    ("rlm", '\u{200f}'),
    ("iexcl", '¡'),
    ("iquest", '¿'),
    ("ordf", 'ª'),
    ("ordm", 'º'),
    ("plusmn", '±'),
    ("frac12", '½'),
    ("frac14", '¼'),
    ("frac34", '¾'),
    ("sup1", '¹'),
    ("sup2", '²'),
    ("sup3", '³'),
    ("micro", 'µ'),
    ("not", '¬'),
    ("macr", '¯'),
    ("acute", '´'),
    ("cedil", '¸'),
    ("uml", '¨'),
    ("brvbar", '¦'),
    ("dagger", '†'),
    ("larr", '←'),
    ("rarr", '→'),
    ("uarr", '↑'),
    ("darr", '↓'),
    ("hearts", '♥'),
    ("check", '✓'),
    ("Agrave", 'À'),
    ("Aacute", 'Á'),
    ("Acirc", 'Â'),
    ("Atilde", 'Ã'),
    ("Auml", 'Ä'),
    ("Aring", 'Å'),
    ("AElig", 'Æ'),
    ("Ccedil", 'Ç'),
    ("Egrave", 'È'),
    ("Eacute", 'É'),
    ("Ecirc", 'Ê'),
    ("Euml", 'Ë'),
    ("Igrave", 'Ì'),
    ("Iacute", 'Í'),
    ("Icirc", 'Î'),
    ("Iuml", 'Ï'),
    ("ETH", 'Ð'),
    ("Ntilde", 'Ñ'),
    ("Ograve", 'Ò'),
    ("Oacute", 'Ó'),
    ("Ocirc", 'Ô'),
    ("Otilde", 'Õ'),
    ("Ouml", 'Ö'),
    ("Oslash", 'Ø'),
    ("Ugrave", 'Ù'),
    ("Uacute", 'Ú'),
    ("Ucirc", 'Û'),
    ("Uuml", 'Ü'),
    ("Yacute", 'Ý'),
    ("THORN", 'Þ'),
    ("szlig", 'ß'),
    ("agrave", 'à'),
    ("aacute", 'á'),
    ("acirc", 'â'),
    ("atilde", 'ã'),
    ("auml", 'ä'),
    ("aring", 'å'),
    ("aelig", 'æ'),
    ("ccedil", 'ç'),
    ("egrave", 'è'),
    ("eacute", 'é'),
    ("ecirc", 'ê'),
    ("euml", 'ë'),
    ("igrave", 'ì'),
    ("iacute", 'í'),
    ("icirc", 'î'),
    ("iuml", 'ï'),
    ("eth", 'ð'),
    ("ntilde", 'ñ'),
    ("ograve", 'ò'),
    ("oacute", 'ó'),
    ("ocirc", 'ô'),
    ("otilde", 'õ'),
    ("ouml", 'ö'),
    ("oslash", 'ø'),
    ("ugrave", 'ù'),
    ("uacute", 'ú'),
    ("ucirc", 'û'),
    ("uuml", 'ü'),
    ("yacute", 'ý'),
    ("thorn", 'þ'),
    ("yuml", 'ÿ'),
    ("OElig", 'Œ'),
    ("oelig", 'œ'),
    ("Scaron", 'Š'),
    ("scaron", 'š'),
    ("Yuml", 'Ÿ'),
    ("Zcaron", 'Ž'),
    ("zcaron", 'ž'),
    ("fnof", 'ƒ'),
    ("circ", 'ˆ'),
    ("tilde", '˜'),
];

/// Entities that browsers also accept without their ';'.
const LEGACY_WITHOUT_SEMICOLON: &[&str] = &["nbsp", "amp", "lt", "gt", "quot"];

pub(super) fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        match decode_one(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// One reference at the start of `s` (which starts with '&').
fn decode_one(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'#') {
        let hex = matches!(b.get(2), Some(b'x' | b'X'));
        let start = if hex { 3 } else { 2 };
        let digits = b[start.min(b.len())..]
            .iter()
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 {
            return None;
        }
        // Too many digits overflow into U+FFFD, as in browsers.
        let n =
            u32::from_str_radix(&s[start..start + digits], if hex { 16 } else { 10 }).unwrap_or(0);
        let len = start + digits + usize::from(b.get(start + digits) == Some(&b';'));
        return Some((numeric_reference(n), len));
    }
    let name_len = b[1..]
        .iter()
        .take(32)
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    if name_len == 0 {
        return None;
    }
    let name = &s[1..1 + name_len];
    let semicolon = b.get(1 + name_len) == Some(&b';');
    if !semicolon && !LEGACY_WITHOUT_SEMICOLON.contains(&name) {
        return None;
    }
    let c = ENTITIES.iter().find(|(n, _)| *n == name)?.1;
    Some((c, 1 + name_len + usize::from(semicolon)))
}

/// As browsers do: C1 codes are Windows-1252, invalid ones U+FFFD.
fn numeric_reference(n: u32) -> char {
    match n {
        0x80 => '€',
        0x85 => '…',
        0x91 => '‘',
        0x92 => '’',
        0x93 => '“',
        0x94 => '”',
        0x95 => '•',
        0x96 => '–',
        0x97 => '—',
        0x99 => '™',
        0 => '\u{FFFD}',
        n => char::from_u32(n).unwrap_or('\u{FFFD}'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(html: &str) -> Vec<String> {
        render(html).lines.into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn entities_are_decoded() {
        let cases = [
            ("a &amp; b", "a & b"),
            ("&lt;x@y.z&gt;", "<x@y.z>"),
            ("caf&eacute; &#233; &#xE9;", "café é é"),
            ("&nbsp", "\u{a0}"),
            ("&unknown; &", "&unknown; &"),
            ("&#146;", "’"),
            ("&#0; &#xD800;", "\u{FFFD} \u{FFFD}"),
            ("&#99999999999;x", "\u{FFFD}x"),
            ("AT&T", "AT&T"),
        ];
        for (input, expected) in cases {
            assert_eq!(decode_entities(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn html_is_rendered_as_lines() {
        let cases: &[(&str, &[&str])] = &[
            ("Hello<br>world", &["Hello", "world"]),
            (
                "<div>Hi</div><div><br></div><div>Thanks,</div><div>Alex</div>",
                &["Hi", "", "Thanks,", "Alex"],
            ),
            ("<p>One</p><p>Two</p>", &["One", "", "Two"]),
            (
                "<p class=MsoNormal>One</p><p class=MsoNormal>Two</p>",
                &["One", "Two"],
            ),
            (
                "A<blockquote>q1<blockquote>q2</blockquote></blockquote>B",
                &["A", "> q1", "> > q2", "B"],
            ),
            (
                "<blockquote style='margin:0 0 0 40px;border:none'>indented</blockquote>",
                &["indented"],
            ),
            ("<ul><li>one<li>two</ul>", &["- one", "- two"]),
            (
                "<a href='https://x.example/p'>here</a>",
                &["here <https://x.example/p>"],
            ),
            ("<a href='https://x.example/'>x.example</a>", &["x.example"]),
            ("<a href='mailto:a@b.c'>Bob</a>", &["Bob"]),
            ("<style>p{}</style><script>alert(1)</script>Text", &["Text"]),
            (
                "<!-- c --><!--[if mso]>x<![endif]-->Text<?xml x?>",
                &["Text"],
            ),
            ("<pre>a  b\n  c</pre>", &["a  b", "  c"]),
            ("1 < 2 and <3", &["1 < 2 and <3"]),
            (
                "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>",
                &["a b", "c"],
            ),
            ("x<div class=gmail_signature>Bob</div>", &["x", "--", "Bob"]),
            ("<p>a</p>&nbsp;<p>b</p>", &["a", "", "b"]),
        ];
        for (input, expected) in cases {
            assert_eq!(lines(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn reply_containers_stop_rendering() {
        let cases = [
            "Reply<div id=\"appendonsend\"></div><hr><div id=\"divRplyFwdMsg\">From: a</div>Original",
            "Reply<div id=\"x_divRplyFwdMsg\">From: a</div><div>Original</div>",
            "Reply<hr id=\"stopSpelling\">Date: today<br>Original",
            "Reply<hr id=zwchr><b>From: </b>a<br>Original",
            "Reply<div style=\"border:none;border-top:solid #E1E1E1 1.0pt\"><p><b>From:</b> a</p></div>Original",
            "Reply<div style=\"border-top: 1px solid\"><b>De :</b> a</div>Original",
            "Reply<div class=\"yahoo_quoted\">On Mon, a wrote:<div>Original</div></div>",
            "Reply<div class=\"moz-forward-container\">-------- Forwarded Message --------</div>",
            "Reply<div class=\"domino-section\"><div class=\"domino-section-head\">Von: a</div>Original</div>",
            "Reply<span id=\"OLK_SRC_BODY_SECTION\"><div>From: a</div>Original</span>",
        ];
        for input in cases {
            let rendered = render(input);
            let texts: Vec<_> = rendered.lines.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, ["Reply"], "input {input:?}");
            assert!(rendered.cut_dropped_text, "input {input:?}");
        }
        // A border-top div that is no reply header is kept.
        assert_eq!(
            lines("<div style=\"border-top:1px solid\">Total: 5</div>"),
            ["Total: 5"]
        );
    }

    #[test]
    fn attribution_containers_are_marked() {
        let rendered = render(
            "Hi<div class=\"gmail_quote\"><div class=\"gmail_attr\">Le lun. X a écrit :</div>\
             <blockquote class=\"gmail_quote\">old</blockquote></div>",
        );
        let marked: Vec<_> = rendered
            .lines
            .iter()
            .map(|l| (l.text.as_str(), l.attribution))
            .collect();
        assert_eq!(
            marked,
            [
                ("Hi", false),
                ("Le lun. X a écrit :", true),
                ("> old", false)
            ]
        );
        // Older Gmail: the attribution is bare text in the container.
        let rendered = render(
            "Hi<div class=gmail_quote>2012/4/2 X<br><blockquote>old</blockquote>after</div>",
        );
        let marked: Vec<_> = rendered
            .lines
            .iter()
            .map(|l| (l.text.as_str(), l.attribution))
            .collect();
        assert_eq!(
            marked,
            [
                ("Hi", false),
                ("2012/4/2 X", true),
                ("> old", false),
                ("after", false)
            ]
        );
        // No blockquote in the container: its text is the author's own.
        let rendered =
            render("<div class=gmail_quote><div class=gmail_quote>My own text</div></div>");
        assert!(rendered.lines.iter().all(|l| !l.attribution));
    }

    #[test]
    fn hostile_html_is_cheap_and_does_not_panic() {
        let deep_divs = "<div>".repeat(100_000) + "x";
        let deep_quotes = "<blockquote>".repeat(100_000) + "x";
        let cases = [
            deep_divs,
            deep_quotes,
            "<".repeat(200_000),
            "<a href=\"".to_string() + &"x".repeat(100_000),
            "<!--".to_string() + &"-".repeat(100_000),
            "<style>".to_string() + &"</sty".repeat(50_000),
            "&#".repeat(100_000),
            "<p>".repeat(100_000),
            "<div style=\"border-top:1px solid\">".repeat(20_000) + "From: x",
            "<li>".repeat(50_000),
            "<td>".repeat(50_000),
            "é<é>&é;<a é=é>".repeat(10_000),
        ];
        for input in &cases {
            let started = std::time::Instant::now();
            let _ = render(input);
            let elapsed = started.elapsed();
            assert!(
                elapsed < std::time::Duration::from_secs(60),
                "{elapsed:?} for input starting {:?}",
                &input[..40]
            );
        }
    }

    /// Issue 16's HTML quote containers, removed as HTML (the answer
    /// keeps its markup), one shape per client.
    #[test]
    fn each_clients_quote_container_leaves_the_html_answer() {
        let answer = "<div>Please <b>unplug it</b>:</div><ul><li>open the tray</li></ul>";
        let cases: &[(&str, &str)] = &[
            (
                "gmail",
                r#"<div class="gmail_quote"><div class="gmail_attr">On Mon, X wrote:</div><blockquote class="gmail_quote" style="border-left:1px solid">OLD</blockquote></div>"#,
            ),
            (
                "gmail new",
                r#"<div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">Le lun., X a écrit :<br></div><blockquote class="gmail_quote">OLD</blockquote></div>"#,
            ),
            (
                "thunderbird",
                r#"<div class="moz-cite-prefix">On 12/3/26 10:00, X wrote:<br></div><blockquote type="cite" cite="mid:a@b">OLD</blockquote>"#,
            ),
            (
                "thunderbird forward",
                r#"<div class="moz-forward-container">-------- Forwarded Message --------<br>OLD</div>"#,
            ),
            (
                "outlook desktop",
                r#"<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p class="MsoNormal"><b>From:</b> X<br><b>Sent:</b> Monday</p></div><p class="MsoNormal">OLD</p>"#,
            ),
            (
                "outlook desktop fr",
                r#"<div style="border:none;border-top:solid #E1E1E1 1.0pt"><p><b>De :</b> X<br><b>Envoyé :</b> lundi</p></div><p>OLD</p>"#,
            ),
            (
                "outlook web",
                r#"<div id="appendonsend"></div><hr style="display:inline-block"><div id="divRplyFwdMsg"><b>From:</b> X</div><div>OLD</div>"#,
            ),
            (
                "outlook web x_",
                r#"<div id="x_divRplyFwdMsg"><b>From:</b> X</div><div>OLD</div>"#,
            ),
            (
                "apple mail",
                r#"<div><br><blockquote type="cite"><div>On 3 Dec 2026, at 10:00, X wrote:</div><br class="Apple-interchange-newline">OLD</blockquote></div>"#,
            ),
            (
                "yahoo",
                r#"<div class="yahoo_quoted" id="yahoo_quoted_1"><div>On Monday, X wrote:</div><div>OLD</div></div>"#,
            ),
            (
                "zoho",
                r#"<div class="zmail_extra_hr" style="border-top:1px solid #ccc"></div><div class="zmail_extra"><div>---- On Mon, X wrote ---</div><blockquote>OLD</blockquote></div>"#,
            ),
            (
                "protonmail",
                r#"<div class="protonmail_quote">------- Original Message -------<br>On Monday, X wrote:<br><blockquote class="protonmail_quote" type="cite">OLD</blockquote></div>"#,
            ),
            (
                "guichet's own blocks",
                r#"<div class="guichet-header">Ticket 7 · status open</div><div class="guichet-earlier">OLD</div>"#,
            ),
        ];
        for (shape, quote) in cases {
            let html = format!("<html><body>{answer}<br>{quote}</body></html>");
            let out = without_history(&html, false);
            assert!(out.contains("<b>unplug it</b>"), "{shape}: {out}");
            assert!(out.contains("<li>open the tray</li>"), "{shape}: {out}");
            for gone in ["OLD", "wrote", "From:", "De :", "Ticket 7"] {
                assert!(!out.contains(gone), "{shape}: {gone:?} left in {out}");
            }
        }
        // Gmail's borderless indent is no quote; an inline reply keeps its quotes
        let indent = r#"<p>a</p><blockquote style="margin:0 0 0 40px;border:none;padding:0px">indented</blockquote>"#;
        assert!(without_history(indent, false).contains("indented"));
        let inline = "<blockquote type=\"cite\">question?</blockquote><p>answer</p>";
        assert!(without_history(inline, true).contains("question?"));
        assert!(!without_history(inline, false).contains("question?"));
        // nothing is removed from a whole mail, and text is escaped again
        let whole =
            bounded("<div class=\"gmail_quote\"><blockquote>OLD &lt;b&gt;</blockquote></div>");
        assert!(whole.contains("OLD &lt;b&gt;"), "{whole}");
    }
}
