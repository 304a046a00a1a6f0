//! HTML that Guichet relays or writes: sanitized with `ammonia` (on the
//! html5ever HTML5 parser, a whitelist) and turned into its text
//! alternative with `html2text` (links kept as numbered references).
//!
//! The whitelist: text structure (paragraphs, headings, lists, tables,
//! quotes, `pre`/`code`), emphasis, links (`http`, `https`, `mailto`
//! only, opened with `rel="noopener noreferrer"`), and images that are
//! parts of the same message (`cid:` naming a part we send along). Gone:
//! scripts, styles and style sheets, event handlers, forms, frames,
//! objects, `javascript:`/`data:`/`vbscript:` URLs, remote images, every
//! `style` and `class` attribute. The input is cut at [`MAX_HTML_BYTES`]
//! and its nesting at 128 levels (the quote rules' tree) before ammonia
//! sees it.

use std::collections::HashSet;

use crate::rules::quotes;

/// HTML longer than this is cut (its text alternative still has it all).
pub const MAX_HTML_BYTES: usize = 512 * 1024;

/// Sanitized HTML of someone's mail, quoted history removed unless
/// `whole`. `cids`: the content ids (lower case, without `cid:`) of the
/// images sent along; other images are dropped.
pub fn relayable(html: &str, whole: bool, keep_quotes: bool, cids: &HashSet<String>) -> String {
    let html = cut(html, MAX_HTML_BYTES);
    // the quote rules' tree bounds nesting; with `whole` nothing is removed
    let shaped = if whole {
        quotes::html_bounded(html)
    } else {
        quotes::html_without_history(html, keep_quotes)
    };
    sanitize(&shaped, cids)
}

/// The whitelist sanitizer (see the module's notes).
pub fn sanitize(html: &str, cids: &HashSet<String>) -> String {
    // the builder is made once (it was a tenth of the sanitizing); its
    // image filter reads this mail's content ids from the thread that
    // cleans, which `clean` never leaves
    static SANITIZER: std::sync::LazyLock<ammonia::Builder<'static>> =
        std::sync::LazyLock::new(sanitizer);
    SENT_CIDS.with_borrow_mut(|sent| sent.clone_from(cids));
    let clean = SANITIZER.clean(html).to_string();
    SENT_CIDS.with_borrow_mut(HashSet::clear);
    clean
}

thread_local! {
    /// The content ids of the images the mail being sanitized sends along.
    static SENT_CIDS: std::cell::RefCell<HashSet<String>> = std::cell::RefCell::new(HashSet::new());
}

fn sanitizer() -> ammonia::Builder<'static> {
    let mut builder = ammonia::Builder::default();
    builder
        .url_schemes(HashSet::from(["http", "https", "mailto", "cid"]))
        .add_tag_attributes("img", ["src", "alt", "width", "height"])
        .add_tag_attributes("td", ["colspan", "rowspan", "align", "valign"])
        .add_tag_attributes("th", ["colspan", "rowspan", "align", "valign"])
        .add_tag_attributes("table", ["border", "cellpadding", "cellspacing"])
        .attribute_filter(|element, attribute, value| match (element, attribute) {
            ("img", "src") => {
                let lower = value.trim().to_ascii_lowercase();
                let cid = lower.strip_prefix("cid:")?;
                SENT_CIDS
                    .with_borrow(|sent| sent.contains(cid))
                    .then(|| value.into())
            }
            (_, "href") => {
                let lower = value.trim().to_ascii_lowercase();
                (lower.starts_with("http://")
                    || lower.starts_with("https://")
                    || lower.starts_with("mailto:"))
                .then(|| value.into())
            }
            _ => Some(value.into()),
        })
        .link_rel(Some("noopener noreferrer"));
    builder
}

/// The text alternative of (sanitized) HTML: 78 columns, links as
/// numbered references under the text.
pub fn to_text(html: &str) -> String {
    let html = cut(html, MAX_HTML_BYTES);
    html2text::from_read(html.as_bytes(), 78).unwrap_or_default()
}

/// Escapes plain text for an HTML template (`<br>` for line ends).
pub fn from_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("<br>\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cids(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_images_a_mail_sends_along_are_its_own_not_the_last_ones() {
        let html = r#"<p>see <img src="cid:shot@x"></p>"#;
        assert!(sanitize(html, &cids(&["shot@x"])).contains("cid:shot@x"));
        // the shared sanitizer forgets the previous mail's parts
        assert!(!sanitize(html, &cids(&[])).contains("cid:"));
        // and each thread has its own
        let other = std::thread::spawn(move || sanitize(html, &cids(&["shot@x"])));
        assert!(!sanitize(html, &cids(&["other@x"])).contains("cid:"));
        assert!(other.join().unwrap().contains("cid:shot@x"));
    }

    #[test]
    fn structure_stays_and_active_content_goes() {
        let html = r#"<p onclick="x()">Hi <b>there</b> <a href="javascript:alert(1)">bad</a>
            <a href="https://example.com/x">good</a></p><script>alert(1)</script>
            <table><tr><td>order 1</td><td>12 €</td></tr></table>
            <ul><li>one</li></ul><img src="cid:shot@x"><img src="http://tracker/p.gif">
            <img src="data:image/png;base64,AAAA"><form><input></form><iframe src="x"></iframe>
            <style>body{}</style><link rel=stylesheet href="http://e/s.css">"#;
        let out = sanitize(html, &cids(&["shot@x"]));
        for kept in [
            "<b>there</b>",
            "<table>",
            "<td>order 1</td>",
            "<li>one</li>",
            "src=\"cid:shot@x\"",
            "href=\"https://example.com/x\"",
        ] {
            assert!(out.contains(kept), "{kept} in {out}");
        }
        for gone in [
            "onclick",
            "javascript",
            "<script",
            "alert",
            "tracker",
            "data:",
            "<form",
            "<input",
            "<iframe",
            "<style",
            "<link",
            "s.css",
        ] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
    }

    #[test]
    fn quoted_history_goes_and_the_text_alternative_keeps_links() {
        let html = r#"<div dir="ltr">New <b>words</b> <a href="https://example.com/doc">the doc</a></div>
            <div class="gmail_quote"><div class="gmail_attr">On Mon, Support wrote:</div>
            <blockquote class="gmail_quote">We have received your message</blockquote></div>"#;
        let out = relayable(html, false, false, &cids(&[]));
        assert!(out.contains("<b>words</b>"));
        assert!(!out.contains("received your message"), "{out}");
        assert!(!out.contains("Support wrote"), "{out}");
        let whole = relayable(html, true, false, &cids(&[]));
        assert!(whole.contains("received your message"));
        let text = to_text(&out);
        assert!(text.contains("https://example.com/doc"), "{text}");
        assert!(text.contains("words"));
    }

    #[test]
    fn deep_nesting_and_huge_input_stay_bounded() {
        let deep = "<div>".repeat(100_000) + "x";
        let out = relayable(&deep, false, false, &cids(&[]));
        assert!(out.contains('x'));
        let big = "<p>".to_string() + &"a".repeat(2 * MAX_HTML_BYTES);
        assert!(relayable(&big, false, false, &cids(&[])).len() <= MAX_HTML_BYTES + 64);
    }
}
