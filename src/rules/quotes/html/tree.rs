//! The tolerant HTML tree the quote rules read: a tokenizer that never
//! fails (a stray `<` is text, an unclosed tag is closed by its parent),
//! implied end tags for `p`/`li`/`td`…, nesting capped at `MAX_DEPTH`
//! so that nothing recurses deeper on hostile input, and bounded
//! look-ahead helpers over the result.

use super::super::is_blank;
use super::entities::decode_entities;

/// Deeper elements are kept as leaves: bounds recursion on hostile input.
const MAX_DEPTH: usize = 128;

pub(super) const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "basefont", "bgsound", "frame", "keygen",
];

/// Elements whose content is not markup; it is skipped, never shown.
pub(super) const RAW_TEXT: &[&str] = &[
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
pub(super) const BLOCK: &[&str] = &[
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
pub(super) const SKIPPED: &[&str] = &["head", "script", "style", "title", "template", "xml"];

pub(super) struct Tree {
    pub(super) nodes: Vec<Node>,
}

pub(super) struct Node {
    pub(super) data: Data,
    pub(super) children: Vec<usize>,
}

pub(super) enum Data {
    Element(Element),
    Text(String),
}

pub(super) struct Element {
    pub(super) name: String,
    pub(super) attrs: Vec<(String, String)>,
}

impl Element {
    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Class tokens, also when Outlook on the web prefixed them with `x_`.
    pub(super) fn has_class(&self, wanted: &[&str]) -> bool {
        self.attr("class").is_some_and(|classes| {
            classes.split_ascii_whitespace().any(|c| {
                let c = c.strip_prefix("x_").unwrap_or(c);
                wanted.iter().any(|w| c.eq_ignore_ascii_case(w))
            })
        })
    }

    pub(super) fn id_is(&self, wanted: &[&str]) -> bool {
        self.attr("id").is_some_and(|id| {
            let id = id.trim();
            let id = id.strip_prefix("x_").unwrap_or(id);
            wanted.iter().any(|w| id.eq_ignore_ascii_case(w))
        })
    }

    /// The `style` attribute, lower-cased and without spaces.
    pub(super) fn style(&self) -> String {
        self.attr("style")
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    }
}

impl Tree {
    pub(super) fn element(&self, idx: usize) -> Option<&Element> {
        match &self.nodes[idx].data {
            Data::Element(e) => Some(e),
            Data::Text(_) => None,
        }
    }

    pub(super) fn name_is(&self, idx: usize, name: &str) -> bool {
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

pub(super) fn parse(html: &str) -> Tree {
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

pub(super) fn is_name_byte(c: u8) -> bool {
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

/// Visiting limits for the look-ahead helpers, which run once per
/// candidate element and must stay cheap on deep or wide trees.
const LOOKAHEAD_NODES: usize = 200;
const LOOKAHEAD_CHARS: usize = 120;

/// The start of an element's text, whitespace collapsed.
pub(super) fn first_text(tree: &Tree, idx: usize) -> String {
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
pub(super) fn subtree_has_text(tree: &Tree, idx: usize) -> bool {
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
