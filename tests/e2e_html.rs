//! HTML both ways (issue 23), through the real Dovecot and Postfix of the
//! rig and the `guichet` binary, every mail read back over IMAP: a
//! customer's HTML (a table, a pasted image, OWASP's XSS vectors) in the
//! agents' copy; a Gmail reply quoting our acknowledgement; an agent's
//! HTML answer from each client's quote container; `[mail] html = false`;
//! a mutt answer relayed as before.

mod harness;
mod support;

use std::time::Duration;

use base64::Engine;
use harness::{Desk, body_text, header, mail, message_id, subject};
use mail_parser::{MessageParser, MimeHeaders};
use support::{deliver_lmtp, fresh_user, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);

fn parsed(raw: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default().parse(raw).expect("parses")
}

/// The content types of every part, in order (`multipart/alternative`…).
fn part_types(raw: &[u8]) -> Vec<String> {
    parsed(raw)
        .parts
        .iter()
        .map(|p| {
            p.content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_lowercase())
                .unwrap_or_else(|| "text/plain".into())
        })
        .collect()
}

/// The decoded `text/html` part, if the mail has one.
fn html_part(raw: &[u8]) -> Option<String> {
    let m = parsed(raw);
    m.parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "text" && c.subtype() == Some("html"))
        })
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
}

/// The decoded `text/plain` body part (the first one).
fn text_part(raw: &[u8]) -> String {
    body_text(raw).replace("\r\n", "\n")
}

fn reply_address(raw: &[u8]) -> String {
    let h = header(raw, "Reply-To").expect("a Reply-To");
    h.rsplit_once('<')
        .map(|(_, a)| a.trim_end_matches('>').to_string())
        .unwrap_or(h)
}

fn png() -> Vec<u8> {
    // a 2x2 PNG (big enough not to be a tracking pixel by its bytes)
    let mut v =
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x40\x00\x00\x00\x40\x08\x02\x00\x00\x00"
            .to_vec();
    v.extend(std::iter::repeat_n(0u8, 600));
    v
}

fn b64(bytes: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(bytes);
    s.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// An HTML-only mail (`multipart/related` when `image` is given: the
/// image as a `cid:` part).
fn html_mail(headers: &[(&str, &str)], html: &str, image: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut out = String::new();
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Message-ID: <{}@client.test>\r\nDate: {}\r\nMIME-Version: 1.0\r\n",
        support::unique_token(),
        chrono::Utc::now().to_rfc2822()
    ));
    let html_b64 = b64(html.as_bytes());
    match image {
        None => out.push_str(&format!(
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{html_b64}\r\n"
        )),
        Some((cid, bytes)) => out.push_str(&format!(
            "Content-Type: multipart/related; boundary=\"REL\"\r\n\r\n--REL\r\n\
             Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{html_b64}\r\n\
             --REL\r\nContent-Type: image/png; name=\"image001.png\"\r\nContent-ID: <{cid}>\r\n\
             Content-Disposition: inline; filename=\"image001.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--REL--\r\n",
            b64(bytes)
        )),
    }
    out.into_bytes()
}

/// A text and HTML mail (`multipart/alternative`), as Gmail sends.
fn alternative_mail(headers: &[(&str, &str)], text: &str, html: &str) -> Vec<u8> {
    let mut out = String::new();
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Message-ID: <{}@client.test>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n\
         --ALT\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --ALT\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--ALT--\r\n",
        support::unique_token(),
        chrono::Utc::now().to_rfc2822(),
        b64(text.replace('\n', "\r\n").as_bytes()),
        b64(html.as_bytes()),
    ));
    out.into_bytes()
}

/// The agents' copy of ticket `id` (the newest).
async fn copy_of(desk: &Desk, id: i64, n: usize) -> Vec<u8> {
    wait_for_messages(&desk.agent, n, WAIT)
        .await
        .into_iter()
        .rev()
        .find(|m| subject(m).contains(&format!("[#{id}]")))
        .expect("the agents' copy")
}

fn ticket_of(desk: &Desk, customer: &str) -> i64 {
    desk.tickets()
        .iter()
        .find(|t| t["client"] == customer)
        .expect("a ticket")["ticket_id"]
        .as_i64()
        .unwrap()
}

/// Every tag of an HTML text: (name, [(attribute, value)]), lower case.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for chunk in html.split('<').skip(1) {
        let inside = chunk.split('>').next().unwrap_or("");
        let mut words = inside.split_whitespace();
        let name = words
            .next()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_lowercase();
        let mut attrs = Vec::new();
        let rest: String =
            inside[inside.find(char::is_whitespace).unwrap_or(inside.len())..].to_string();
        // attribute="value" pairs as ammonia writes them
        let mut r = rest.as_str();
        while let Some(eq) = r.find("=\"") {
            let name = r[..eq]
                .trim()
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or("")
                .to_lowercase();
            let after = &r[eq + 2..];
            let end = after.find('"').unwrap_or(after.len());
            attrs.push((name, after[..end].to_lowercase()));
            r = &after[(end + 1).min(after.len())..];
        }
        out.push((name, attrs));
    }
    out
}

/// Issue 23 "Must show" 1: a table, a pasted image and 50-odd known XSS
/// vectors: the copy's HTML shows the table and the image (a related
/// part), and nothing active is left.
#[tokio::test]
async fn an_html_customer_mail_keeps_its_table_and_image_and_loses_every_xss_vector() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let vectors: Vec<&str> = include_str!("fixtures/html/xss-vectors.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(vectors.len() >= 30);
    let mut html = String::from(
        "<html><body><p>Hello, my <b>orders</b> are wrong:</p>\
         <table border=\"1\"><tr><th>Order</th><th>Amount</th></tr>\
         <tr><td>A-1001</td><td>12 EUR</td></tr><tr><td>A-1002</td><td>30 EUR</td></tr></table>\
         <p>See the screenshot: <img src=\"cid:shot.01@client.test\" alt=\"screenshot\"></p>",
    );
    for v in &vectors {
        html.push_str("<div>");
        html.push_str(v);
        html.push_str("</div>\n");
    }
    html.push_str("</body></html>");
    let raw = html_mail(
        &[
            ("From", &format!("Ann <{customer}>")),
            ("To", &desk.support),
            ("Subject", "Orders"),
        ],
        &html,
        Some(("shot.01@client.test", &png())),
    );
    deliver_lmtp(&desk.support, &raw).await;
    desk.run_once(None);
    let id = ticket_of(&desk, &customer);
    let copy = copy_of(&desk, id, 1).await;
    let types = part_types(&copy);
    assert!(
        types.contains(&"multipart/alternative".to_string()),
        "{types:?}"
    );
    assert!(
        types.contains(&"multipart/related".to_string()),
        "{types:?}"
    );
    let whole = html_part(&copy).expect("an HTML part");
    // the customer's part of the copy (the template's own head and
    // header block around it are ours)
    let start = whole
        .find("class=\"guichet-text\">")
        .expect("the customer's part");
    let end = whole.rfind("</body>").unwrap_or(whole.len());
    let got = whole[start + 20..end].to_string();
    for kept in [
        "<table",
        "<td>A-1001</td>",
        "<td>30 EUR</td>",
        "<b>orders</b>",
        "src=\"cid:shot.01@client.test\"",
    ] {
        assert!(
            got.contains(kept),
            "{kept} missing from the copy's HTML:\n{got}"
        );
    }
    // the image is a part of the copy, by its Content-ID
    let m = parsed(&copy);
    assert!(
        m.parts.iter().any(|p| p
            .content_id()
            .is_some_and(|c| c.contains("shot.01@client.test"))
            && p.contents().starts_with(b"\x89PNG")),
        "the pasted image is a related part"
    );
    // nothing active: no dangerous element, no handler, no script URL
    let banned_tags = [
        "script", "iframe", "frame", "frameset", "object", "embed", "form", "input", "button",
        "style", "link", "meta", "base", "bgsound", "svg", "math", "video", "source",
    ];
    for (name, attrs) in tags(&got) {
        assert!(
            !banned_tags.contains(&name.as_str()),
            "<{name}> reached the agents:\n{got}"
        );
        for (a, v) in attrs {
            assert!(!a.starts_with("on"), "{a} on <{name}> reached the agents");
            assert!(
                a != "style" && a != "background" && a != "dynsrc" && a != "lowsrc",
                "{a}"
            );
            for bad in [
                "javascript:",
                "vbscript:",
                "data:",
                "expression",
                "xss.rocks",
                "evil.example",
            ] {
                assert!(!v.contains(bad), "{bad} in {a}=\"{v}\" on <{name}>");
            }
        }
    }
    for v in &vectors {
        assert!(!got.contains(v), "vector kept verbatim: {v}");
    }
    // the text alternative has the table's words too
    let text = text_part(&copy);
    assert!(text.contains("A-1001") && text.contains("30 EUR"), "{text}");
}

/// Issue 23 "Must show" 2: a Gmail reply quoting our acknowledgement
/// gives the agents her new sentence and none of the acknowledgement;
/// the original rides along whole.
#[tokio::test]
async fn a_gmail_reply_quoting_our_acknowledgement_gives_agents_only_her_new_words() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let first = mail(
        &[
            ("From", &format!("Ann <{customer}>")),
            ("To", &desk.support),
            ("Subject", "Printer jam"),
        ],
        "My printer jams on every page.",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = ticket_of(&desk, &customer);
    let ack = wait_for_messages(&customer, 1, WAIT).await.remove(0);
    let ack_text = text_part(&ack);
    let ack_lines: Vec<&str> = ack_text
        .lines()
        .map(str::trim)
        .filter(|l| l.len() > 12)
        .collect();
    assert!(ack_lines.len() >= 3, "{ack_text}");
    let attribution = format!(
        "On {}, Example Support &lt;{}&gt; wrote:",
        header(&ack, "Date").unwrap_or_default(),
        desk.support
    );
    let text = format!(
        "It also smells of smoke now.\n\nOn {}, Example Support <{}> wrote:\n{}",
        header(&ack, "Date").unwrap_or_default(),
        desk.support,
        ack_text
            .lines()
            .map(|l| format!("> {l}\n"))
            .collect::<String>()
    );
    let quoted_html: String = ack_text.lines().map(|l| format!("{l}<br>")).collect();
    let html = format!(
        "<div dir=\"ltr\">It also smells of <b>smoke</b> now.</div><br>\
         <div class=\"gmail_quote gmail_quote_container\"><div dir=\"ltr\" class=\"gmail_attr\">{attribution}<br></div>\
         <blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex\">{quoted_html}</blockquote></div>"
    );
    let reply = alternative_mail(
        &[
            ("From", &format!("Ann <{customer}>")),
            ("To", &reply_address(&ack)),
            ("Subject", &format!("Re: {}", subject(&ack))),
            ("In-Reply-To", &format!("<{}>", message_id(&ack))),
        ],
        &text,
        &html,
    );
    deliver_lmtp(&reply_address(&ack), &reply).await;
    desk.run_once(None);
    let copy = copy_of(&desk, id, 2).await;
    assert_ne!(message_id(&copy), "");
    let copy_text = text_part(&copy);
    let copy_html = html_part(&copy).expect("an HTML part");
    assert!(
        copy_text.contains("It also smells of smoke now."),
        "{copy_text}"
    );
    assert!(copy_html.contains("<b>smoke</b>"), "{copy_html}");
    for line in &ack_lines {
        assert!(
            !copy_text.contains(line),
            "{line:?} came back to the agents:\n{copy_text}"
        );
        assert!(
            !copy_html.contains(line),
            "{line:?} came back to the agents:\n{copy_html}"
        );
    }
    assert!(!copy_text.contains("wrote:"), "{copy_text}");
    // earlier in this ticket: her first message, new text only
    assert!(copy_text.contains("Earlier in this ticket"), "{copy_text}");
    assert!(
        copy_text.contains("My printer jams on every page."),
        "{copy_text}"
    );
    assert!(copy_text.find("smells of smoke") < copy_text.find("Earlier in this ticket"));
    // the original, untouched, is attached
    let types = part_types(&copy);
    assert!(types.contains(&"message/rfc822".to_string()), "{types:?}");
    let m = parsed(&copy);
    let original = m
        .parts
        .iter()
        .find_map(|p| p.message())
        .expect("the original attached");
    assert_eq!(original.message_id(), parsed(&reply).message_id());
    assert!(
        original
            .body_text(0)
            .unwrap_or_default()
            .contains(ack_lines[0]),
        "the original keeps the quote"
    );

    // a reply that is nothing but quotes shows whole
    let only_quotes = mail(
        &[
            ("From", &format!("Ann <{customer}>")),
            ("To", &reply_address(&ack)),
            ("Subject", &format!("Re: {}", subject(&ack))),
            ("In-Reply-To", &format!("<{}>", message_id(&ack))),
        ],
        &ack_text
            .lines()
            .map(|l| format!("> {l}\n"))
            .collect::<String>(),
    );
    deliver_lmtp(&reply_address(&ack), &only_quotes).await;
    desk.run_once(None);
    let copies = wait_for_messages(&desk.agent, 3, WAIT).await;
    let third = text_part(copies.last().unwrap());
    assert!(third.contains(ack_lines[0]), "shown whole:\n{third}");
}

/// An agent's HTML-only answer (bold, list, link) below which their client
/// put the copy in its quote container.
fn agent_html_answer(shape: &str, copy_html: &str) -> String {
    let answer = "<div>#priority high</div><div>Hello Ann,</div><div>Please <b>unplug it</b> and then:</div>\
                  <ul><li>open the tray</li><li>remove the paper</li></ul>\
                  <div>Manual: <a href=\"https://example.com/manual\">the printer manual</a></div>";
    let history = format!("<div>QUOTED-HISTORY-MARK</div>{copy_html}");
    let quote = match shape {
        "thunderbird" => format!(
            "<div class=\"moz-cite-prefix\">On 12/3/26 10:00, Support wrote:<br></div>\
             <blockquote type=\"cite\" cite=\"mid:x@y\">{history}</blockquote>"
        ),
        "gmail" => format!(
            "<div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">On Thu, Dec 3, 2026 at 10:00 AM Support wrote:<br></div>\
             <blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid\">{history}</blockquote></div>"
        ),
        "outlook_desktop" => format!(
            "<div><div style=\"border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm\">\
             <p class=\"MsoNormal\"><b>From:</b> Support &lt;support@x&gt;<br><b>Sent:</b> Thursday<br>\
             <b>Subject:</b> Printer</p></div></div>{history}"
        ),
        "outlook_web" => format!(
            "<div id=\"appendonsend\"></div><hr style=\"display:inline-block;width:98%\">\
             <div id=\"divRplyFwdMsg\" dir=\"ltr\"><b>From:</b> Support<br><b>Sent:</b> Thursday</div>{history}"
        ),
        "apple_mail" => format!(
            "<div><br><blockquote type=\"cite\"><div>On 3 Dec 2026, at 10:00, Support wrote:</div>\
             <br class=\"Apple-interchange-newline\">{history}</blockquote></div>"
        ),
        "yahoo" => format!(
            "<div class=\"yahoo_quoted\" id=\"yahoo_quoted_123\"><div>On Thursday, Support wrote:</div>\
             <div>{history}</div></div>"
        ),
        "zoho" => format!(
            "<div class=\"zmail_extra_hr\" style=\"border-top:1px solid rgb(204,204,204)\"></div>\
             <div class=\"zmail_extra\" data-zbluepencil-ignore=\"true\"><div id=\"Zm-_Id_-Sgn1\">---- On Thu, 03 Dec 2026 Support wrote ---</div>\
             <blockquote style=\"border-left:1px solid rgb(204,204,204)\">{history}</blockquote></div>"
        ),
        "protonmail" => format!(
            "<div class=\"protonmail_quote\">------- Original Message -------<br>On Thursday, Support wrote:<br>\
             <blockquote class=\"protonmail_quote\" type=\"cite\">{history}</blockquote></div>"
        ),
        other => panic!("no shape {other}"),
    };
    format!("<html><body>{answer}<br>{quote}</body></html>")
}

/// Issue 23 "Must show" 3 and issue 16's HTML quote containers: each
/// client's answer reaches the customer with its formatting, a text
/// alternative that keeps the link, and none of the quoted copy.
#[tokio::test]
async fn agent_html_answers_from_every_client_reach_the_customer_formatted_without_their_quote() {
    let desk = Desk::new("");
    let shapes = [
        "thunderbird",
        "gmail",
        "outlook_desktop",
        "outlook_web",
        "apple_mail",
        "yahoo",
        "zoho",
        "protonmail",
    ];
    let mut failures = Vec::new();
    for shape in shapes {
        let customer = fresh_user("customer");
        let first = mail(
            &[
                ("From", &format!("Ann <{customer}>")),
                ("To", &desk.support),
                ("Subject", "Printer on fire"),
            ],
            "Is my printer on fire?",
        );
        deliver_lmtp(&desk.support, &first).await;
        desk.run_once(None);
        let id = ticket_of(&desk, &customer);
        let copy = wait_for_messages(&desk.agent, 1, WAIT)
            .await
            .into_iter()
            .rev()
            .find(|m| subject(m).contains(&format!("[#{id}]")))
            .unwrap();
        let copy_html = html_part(&copy).expect("the copy has HTML");
        let answer = html_mail(
            &[
                ("From", &desk.agent),
                ("To", &reply_address(&copy)),
                ("Subject", &format!("Re: {}", subject(&copy))),
                ("In-Reply-To", &format!("<{}>", message_id(&copy))),
            ],
            &agent_html_answer(shape, &copy_html),
            None,
        );
        deliver_lmtp(&reply_address(&copy), &answer).await;
        desk.run_once(None);
        let got = wait_for_messages(&customer, 2, WAIT).await;
        let Some(relayed) = got.iter().find(|m| subject(m).starts_with("Re:")) else {
            failures.push(format!("{shape}: nothing relayed"));
            continue;
        };
        let html = html_part(relayed).unwrap_or_default();
        let text = text_part(relayed);
        let mut check = |ok: bool, what: &str, body: &str| {
            if !ok {
                failures.push(format!("{shape}: {what}\n{body}"));
            }
        };
        check(html.contains("<b>unplug it</b>"), "bold kept", &html);
        check(html.contains("<li>open the tray</li>"), "list kept", &html);
        check(
            html.contains("href=\"https://example.com/manual\""),
            "link kept",
            &html,
        );
        check(
            text.contains("https://example.com/manual"),
            "text keeps the link",
            &text,
        );
        check(
            text.contains("unplug it") && text.contains("open the tray"),
            "text has the answer",
            &text,
        );
        for body in [&html, &text] {
            for internal in [
                "QUOTED-HISTORY-MARK",
                "Is my printer on fire?",
                "Reply to this email",
                "#priority",
                &format!("Ticket {id} ·"),
                "wrote:",
            ] {
                check(
                    !body.contains(internal),
                    &format!("{internal:?} reached the customer"),
                    body,
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Issue 23: `[mail] html = false` sends text only, as before.
#[tokio::test]
async fn html_false_sends_text_only() {
    let desk = Desk::with("", "", "\n[mail]\nhtml = false\n");
    let customer = fresh_user("customer");
    let raw = html_mail(
        &[
            ("From", &format!("Ann <{customer}>")),
            ("To", &desk.support),
            ("Subject", "Orders"),
        ],
        "<p>My <b>orders</b> are wrong</p>",
        None,
    );
    deliver_lmtp(&desk.support, &raw).await;
    desk.run_once(None);
    let id = ticket_of(&desk, &customer);
    let ack = wait_for_messages(&customer, 1, WAIT).await.remove(0);
    let copy = copy_of(&desk, id, 1).await;
    for m in [&ack, &copy] {
        assert!(
            html_part(m).is_none(),
            "an HTML part was sent: {:?}",
            part_types(m)
        );
        assert!(
            header(m, "Content-Type")
                .unwrap_or_default()
                .starts_with("text/plain"),
            "{:?}",
            header(m, "Content-Type")
        );
    }
    assert!(text_part(&copy).contains("orders are wrong"));
}

/// Issue 23: a text-only agent (mutt) is relayed exactly as before: the
/// text part is the agent's words and the signature, nothing else; the
/// acknowledgement has both parts.
#[tokio::test]
async fn a_mutt_answer_is_relayed_as_before() {
    let desk = Desk::new("");
    let customer = fresh_user("customer");
    let first = mail(
        &[
            ("From", &format!("Ann <{customer}>")),
            ("To", &desk.support),
            ("Subject", "Printer on fire"),
        ],
        "Is my printer on fire?",
    );
    deliver_lmtp(&desk.support, &first).await;
    desk.run_once(None);
    let id = ticket_of(&desk, &customer);
    let ack = wait_for_messages(&customer, 1, WAIT).await.remove(0);
    assert!(part_types(&ack).contains(&"multipart/alternative".to_string()));
    assert!(html_part(&ack).unwrap().contains(&format!("ticket {id}")));
    let copy = copy_of(&desk, id, 1).await;
    let (to, reply) =
        harness::reply_to_mail(&desk.agent, &copy, "Yes: unplug it now.\n<b>not bold</b>");
    deliver_lmtp(&to, &reply).await;
    desk.run_once(None);
    let got = wait_for_messages(&customer, 2, WAIT).await;
    let relayed = got
        .iter()
        .find(|m| subject(m).starts_with("Re:"))
        .expect("relayed");
    assert_eq!(
        text_part(relayed).trim_end(),
        format!("Yes: unplug it now.\n<b>not bold</b>\n\n-- \nExample Support · ticket {id}")
    );
    // the HTML alternative shows the same words, escaped
    let html = html_part(relayed).expect("an HTML part");
    assert!(
        html.contains("Yes: unplug it now.") && html.contains("&lt;b&gt;not bold&lt;/b&gt;"),
        "{html}"
    );
    // and nothing of the quoted copy (its header block, command help and
    // the customer's words), which the text part lost: the HTML was once
    // made from the whole text mutt sent (mail-parser turns a text/plain
    // body into HTML when asked for one)
    for quoted in ["wrote:", "Is my printer on fire?", "#close", "&gt; "] {
        assert!(
            !html.contains(quoted),
            "{quoted:?} in the relayed HTML: {html}"
        );
    }
}
