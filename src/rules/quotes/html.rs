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
//!
//! The tree is read in `tree` (character references in `entities`); this
//! file renders it as text; `writer` writes it back as HTML without its
//! history, for the agents' and customers' HTML copies.

mod entities;
mod tree;
mod writer;

use tree::{BLOCK, Data, Element, SKIPPED, Tree, first_text, parse, subtree_has_text};
pub(super) use writer::{bounded, without_history};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(html: &str) -> Vec<String> {
        render(html).lines.into_iter().map(|l| l.text).collect()
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
