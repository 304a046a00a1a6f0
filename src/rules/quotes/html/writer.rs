//! The HTML writer: a reply's HTML without its quoted history
//! ([`without_history`]), or the whole HTML as the tolerant tree reads it
//! ([`bounded`]), for the sanitizer that follows.

use super::tree::{Data, Element, RAW_TEXT, SKIPPED, Tree, VOID, is_name_byte, parse};
use super::{is_indent, is_reply_container, is_signature_container};

/// The HTML of a reply without its quoted history, as HTML (not yet
/// sanitized: the caller's sanitizer re-parses it). Removed: Gmail's quote
/// container and attribution, `<blockquote>` quotes (Apple Mail,
/// Thunderbird: not Gmail's borderless indent), Thunderbird's
/// `moz-cite-prefix`, signature containers, Guichet's own header and
/// history blocks (`guichet-header`, `guichet-earlier`), and everything
/// from a reply container on (Outlook desktop and web, Yahoo, Zoho,
/// ProtonMail, Thunderbird's forward, Lotus Notes). `keep_quotes` keeps the
/// `<blockquote>`s outside those containers (an inline reply).
pub(in crate::rules::quotes) fn without_history(html: &str, keep_quotes: bool) -> String {
    write(html, Some(keep_quotes))
}

/// The HTML as the tolerant tree reads it (nesting capped), nothing removed.
pub(in crate::rules::quotes) fn bounded(html: &str) -> String {
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
