//! Table tests of the quote and signature rules, one table per family.

use std::time::{Duration, Instant};

use super::*;

const ANSWER: &str = "Thanks, the refund is on its way.";

/// `(header, why)`: each header sits between the answer and a `>` block;
/// only the answer must remain.
#[test]
fn quote_headers_in_each_language_are_removed_with_their_quote() {
    let headers = [
        (
            "On Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:",
            "en Gmail",
        ),
        ("On Apr 3, 2012, at 4:19 PM, bob wrote:", "en Apple Mail"),
        ("On 04/02/2012 06:26 PM, Megan One wrote:", "en Thunderbird"),
        (
            "On Tue, Sep 25, 2012 at 8:59 AM, Chris Wanstrath\n<notifications@github.com> wrote:",
            "en wrapped on 2 lines",
        ),
        (
            "On Dec 16, 2011, at 12:47 PM, Corey Donohoe\n<reply@reply.github.com>\nwrote:",
            "en wrapped on 3 lines",
        ),
        (
            "--- On Wed, 4/4/12, xxx@example.com <xxx@example.com> wrote:",
            "en Yahoo",
        ),
        (
            "Le lun. 2 avr. 2012 à 18:26, Megan One <xxx@gmail.com> a écrit :",
            "fr Gmail",
        ),
        (
            "Le 2 avr. 2012 à 18:26, Megan One <xxx@gmail.com> a\u{a0}écrit\u{a0}:",
            "fr Apple Mail, no-break spaces",
        ),
        ("Le 02/04/2012 18:26, Megan One a écrit :", "fr Thunderbird"),
        (
            "Am Mo., 2. Apr. 2012 um 18:26 Uhr schrieb Megan One <xxx@gmail.com>:",
            "de Gmail",
        ),
        ("Am 02.04.2012 um 18:26 schrieb Megan One:", "de Apple Mail"),
        (
            "El lun, 2 abr 2012 a las 18:26, Megan One (<xxx@gmail.com>) escribió:",
            "es Gmail",
        ),
        (
            "Il giorno lun 2 apr 2012 alle ore 18:26 Megan One <xxx@gmail.com> ha scritto:",
            "it Gmail",
        ),
        (
            "Op ma 2 apr. 2012 om 18:26 schreef Megan One <xxx@gmail.com>:",
            "nl Gmail",
        ),
        (
            "W dniu 2.04.2012 o 18:26, Megan One <xxx@gmail.com> pisze:",
            "pl Thunderbird",
        ),
        (
            "pon., 2 kwi 2012 o 18:26 Megan One <xxx@gmail.com> napisał(a):",
            "pl Gmail",
        ),
        (
            "Em seg., 2 de abr. de 2012 às 18:26, Megan One <xxx@gmail.com> escreveu:",
            "pt Gmail",
        ),
        (
            "Den 2 apr. 2012 kl. 18:26 skrev Megan One <xxx@gmail.com>:",
            "sv Apple Mail",
        ),
        (
            "Den man. 2. apr. 2012 kl. 18.26 skrev Megan One <xxx@gmail.com>:",
            "da Gmail",
        ),
        (
            "man. 2. apr. 2012 kl. 18:26 skrev Megan One <xxx@gmail.com>:",
            "no Gmail",
        ),
        (
            "ma 2. huhtik. 2012 klo 18.26 Megan One (xxx@gmail.com) kirjoitti:",
            "fi Gmail",
        ),
        (
            "2 апреля 2012 г., 18:26 пользователь Megan One <xxx@gmail.com> написал:",
            "ru Gmail",
        ),
        (
            "02.04.2012 14:20 пользователь \"bob@xxx.mailgun.org\" <\nbob@xxx.mailgun.org> написал:",
            "ru Android, wrapped",
        ),
        (
            "Megan One <xxx@gmail.com> 于2012年4月2日周一 下午6:26写道：",
            "zh Gmail",
        ),
        (
            "2012年4月2日(月) 18:26 Megan One <xxx@gmail.com>:",
            "ja Gmail (no verb)",
        ),
        (
            "26.06.2014, 14:41, \"Alexander L\" <abc@example.com>:",
            "Yandex (no verb)",
        ),
    ];
    for (header, why) in headers {
        for body in [
            format!("{ANSWER}\n\n{header}\n> Hello, where is my refund?\n>\n> Megan"),
            format!(
                "{ANSWER}\r\n\r\n{}\r\n\r\n> Hello\r\n",
                header.replace('\n', "\r\n")
            ),
        ] {
            let v = visible_text(&body);
            assert_eq!(v.text, ANSWER, "{why}: {body:?}");
            assert!(
                v.removed_quote && !v.inline_reply && !v.only_quotes,
                "{why}: {v:?}"
            );
        }
    }
}

/// `(history, why)`: everything from the history down goes, quoted or not.
#[test]
fn outlook_style_history_blocks_are_cut() {
    let blocks = [
        (
            "-----Original Message-----\nFrom: Megan\nSent: Monday\nTo: bob\nSubject: Test\n\nHi",
            "en marker",
        ),
        (
            "----- Original Message -----\nFrom: a@b.c\nTo: d@e.f\nSent: Monday\nSubject: Test",
            "Zimbra/Yahoo marker",
        ),
        (
            "From: Megan [mailto:x@y.z]\nSent: Monday, April 2, 2012 6:26 PM\nTo: bob\nSubject: Test\n\nHi",
            "en block",
        ),
        (
            "________________________________\nFrom: Megan\nSent: Monday\nTo: bob\nSubject: Test\n\nHi",
            "en block under a rule",
        ),
        (
            " ------------------------------\n\n*From:* Megan\n*Sent:* Monday\n*To:* bob\n*Subject:* Test\n\nHi",
            "bold fields",
        ),
        (
            "From: Megan\nSent: Monday\nTo: a@b.c; d@e.f;\n  g@h.i\nCc: x\nSubject: Test\n\nHi",
            "wrapped To",
        ),
        (
            "Date: Mon, 2 Apr 2012\nSubject: Test\nFrom: a@b.c\nTo: d@e.f\n\nHi",
            "Hotmail order",
        ),
        (
            "-----Message d'origine-----\nDe : Megan\nEnvoyé : lundi\nÀ : bob\nObjet : Test\n\nSalut",
            "fr marker",
        ),
        (
            "De : Megan\nEnvoyé : lundi 2 avril 2012 18:26\nÀ : bob\nObjet : Test\n\nSalut",
            "fr block",
        ),
        (
            "-----Ursprüngliche Nachricht-----\nVon: Megan\nGesendet: Montag\nAn: bob\nBetreff: Test",
            "de marker",
        ),
        (
            "Von: Megan\nGesendet: Montag, 2. April 2012 18:26\nAn: bob\nBetreff: Test\n\nHallo",
            "de block",
        ),
        (
            "De: Megan\nEnviado: lunes\nPara: bob\nAsunto: Test\n\nHola",
            "es block",
        ),
        (
            "Da: Megan\nInviato: lunedì\nA: bob\nOggetto: Test\n\nCiao",
            "it block",
        ),
        (
            "Van: Megan\nVerzonden: maandag\nAan: bob\nOnderwerp: Test\n\nHoi",
            "nl block",
        ),
        (
            "De: Megan\nEnviada em: segunda-feira\nPara: bob\nAssunto: Test\n\nOlá",
            "pt block",
        ),
        (
            "Od: Megan\nWysłano: poniedziałek\nDo: bob\nTemat: Test\n\nCześć",
            "pl block",
        ),
        (
            "Från: Megan\nSkickat: måndag\nTill: bob\nÄmne: Test\n\nHej",
            "sv block",
        ),
        (
            "Fra: Megan\nSendt: mandag\nTil: bob\nEmne: Test\n\nHej",
            "da/no block",
        ),
        (
            "От: Megan\nОтправлено: понедельник\nКому: bob\nТема: Test\n\nПривет",
            "ru block",
        ),
        (
            "差出人: Megan\n送信日時: 2012年4月2日 18:26\n宛先: bob\n件名: Test\n\nこんにちは",
            "ja block",
        ),
        (
            "发件人: Megan\n发送时间: 2012年4月2日 18:26\n收件人: bob\n主题: Test\n\n你好",
            "zh block",
        ),
        (
            "---------- Forwarded message ---------\nFrom: Megan <x@y.z>\nDate: Mon\nSubject: Test",
            "Gmail forward",
        ),
        (
            "Begin forwarded message:\n\nFrom: Megan\nSubject: Test\nDate: Mon\nTo: bob",
            "Apple forward",
        ),
        (
            "-------- Message transféré --------\nSujet : Test",
            "fr Thunderbird forward",
        ),
        (
            "On Wed, 4/4/12, x@example.com <x@example.com> wrote:\n\nNew Booking Inquiry\nDetails",
            "header over unprefixed text",
        ),
        (
            "From: Megan\nSent: Monday\nTo: bob\nSubject: Test\n\n> Hi",
            "block over a quote",
        ),
    ];
    for (block, why) in blocks {
        let body = format!("{ANSWER}\n\n{block}\n");
        let v = visible_text(&body);
        assert_eq!(v.text, ANSWER, "{why}: {body:?}");
        assert!(v.removed_quote && !v.only_quotes, "{why}: {v:?}");
        let v = visible_text(block);
        assert!(v.only_quotes && v.text.is_empty(), "{why} alone: {v:?}");
    }
}

/// `(body, visible)`: text that looks a little like history but is not.
#[test]
fn answers_resembling_history_are_kept() {
    let cases = [
        "On your remote host you can run:\n\n     telnet 127.0.0.1 52698",
        "One outstanding question I had:\n\nLocally, when I run...",
        "As I wrote on 3 March 2024:\nthe refund is done.",
        "On Monday I wrote:\nthe refund is done.",
        "From: our billing team\nThe refund is done.",
        "Date: tomorrow\nSubject: the meeting\nTo: everyone",
        "The original message was lost, sorry.",
        "And here is a fix -- this is not a signature.\n\nkthxbai",
        "Steps:\n- open the app\n- click Pay",
        "Total:\n---\n42",
        "Sent from my desk, is much easier then my mobile phone.",
        "Call me at 10:30:\nI will be in.",
    ];
    for body in cases {
        let v = visible_text(body);
        assert_eq!(v.text, body, "{body:?}");
        assert!(
            !v.removed_quote && !v.removed_signature && !v.only_quotes,
            "{body:?}: {v:?}"
        );
    }
}

/// `(body, visible)`: signatures go, only in signature mode.
#[test]
fn signatures_are_removed() {
    let cases = [
        ("Answer\n\n-- \nBob\nACME Support", "Answer"),
        ("Answer\n--\nBob", "Answer"),
        (
            "Answer\n\n-- \nBob\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan <m@x.y> wrote:\n> Hi",
            "Answer",
        ),
        ("Answer\n\nSent from my iPhone", "Answer"),
        (
            "Answer\n\nSent from my Verizon Wireless BlackBerry",
            "Answer",
        ),
        ("Answer\n\nSent from Mail for Windows 10", "Answer"),
        ("Answer\n\nGet Outlook for iOS", "Answer"),
        ("Answer\n\nEnvoyé de mon iPhone", "Answer"),
        ("Answer\n\nVon meinem iPhone gesendet", "Answer"),
        ("Answer\n\nEnviado desde mi iPhone", "Answer"),
        ("Answer\n\niPhoneから送信", "Answer"),
        (
            "Answer\n\nSent from my iPhone\n\nOn Apr 3, 2012, at 4:19 PM, bob <b@x.y> wrote:\n\n> Hi",
            "Answer",
        ),
        ("Answer\n\n-Bob", "Answer"),
        (
            "Answer\n\n-Abhishek Kona\n\n\n_______________________________________________\nlist footer",
            "Answer",
        ),
        (
            "Answer\n________________________________________\nlist footer",
            "Answer",
        ),
    ];
    for (body, visible) in cases {
        let v = visible_text(body);
        assert_eq!(v.text, visible, "{body:?}");
        assert!(v.removed_signature && !v.only_quotes, "{body:?}: {v:?}");
    }
    let kept = [
        "Thanks\n-Bob",
        "Answer\n\n- a bullet",
        "Answer\n\n-- not a delimiter",
    ];
    for body in kept {
        let v = visible_text(body);
        assert_eq!(v.text, body, "{body:?}");
        assert!(!v.removed_signature, "{body:?}: {v:?}");
    }
}

#[test]
fn quotes_only_mode_keeps_the_signature() {
    let options = Options {
        strip_signature: false,
        ..Options::default()
    };
    let cases = [
        (
            "Hello\n\n-- \nBob\n\n\nOn Tuesday, April 3, 2012 at 4:55 PM, x wrote:\n\n> Hi",
            "Hello\n\n-- \nBob",
        ),
        (
            "Hello\n\nSent from my iPhone\n\nOn Apr 3, 2012, at 4:19 PM, bob <b@x.y> wrote:\n\n> Hi",
            "Hello\n\nSent from my iPhone",
        ),
        ("Hello\n\n-Bob", "Hello\n\n-Bob"),
    ];
    for (body, visible) in cases {
        let v = visible_text_with(body, options);
        assert_eq!(v.text, visible, "{body:?}");
        assert!(!v.removed_signature, "{body:?}: {v:?}");
    }
}

/// `(body, visible, inline)`: the question right above each answer stays
/// (issue 16: not its quote header nor the rest of the block); the trailing
/// block and a bottom-posted leading block go.
#[test]
fn inline_replies_keep_their_quotes() {
    let cases = [
        (
            "On Tue, Apr 29, 2014 at 4:22 PM, Dev <d@x.y> wrote:\n\n> q1\n>\n\na1\n\n> q2\n\na2\n\n> trailing\n> more",
            "> q1\n\na1\n\n> q2\n\na2",
            true,
        ),
        (
            "Hi,\nOn Mon, Apr 2, 2012 at 6:26 PM, M <m@x.y> wrote:\n> q\n\nanswer\n\n> trailing",
            "Hi,\n> q\n\nanswer",
            true,
        ),
        (
            "> Can I get a refund?\n\nYes, done.",
            "> Can I get a refund?\n\nYes, done.",
            true,
        ),
        ("> q1\na1\n> q2\na2\n\n-- \nBob", "> q1\na1\n> q2\na2", true),
        // Bottom-posting: header and quote on top, one answer below.
        (
            "On 04/02/2012 06:26 PM, Megan One wrote:\n> Hi \nHello",
            "Hello",
            false,
        ),
        (
            "On Mon, Apr 2, 2012 at 6:26 PM, M <m@x.y> wrote:\n\n> a\n> b\n\nThe answer.\n\nBob",
            "The answer.\n\nBob",
            false,
        ),
    ];
    for (body, visible, inline) in cases {
        let v = visible_text(body);
        assert_eq!(v.text, visible, "{body:?}");
        assert_eq!(v.inline_reply, inline, "{body:?}: {v:?}");
        assert!(!v.only_quotes, "{body:?}: {v:?}");
    }
}

#[test]
fn replies_without_own_text_are_only_quotes() {
    let cases = [
        ("", false, false),
        (" \n\t\n", false, false),
        ("> a\n> b", true, false),
        (
            "On Mon, Apr 2, 2012 at 6:26 PM, M <m@x.y> wrote:\n> a",
            true,
            false,
        ),
        ("\n\n-- \nBob\nACME", false, true),
        (
            "Sent from my iPhone\n\nOn Apr 3, 2012, at 4:19 PM, bob <b@x.y> wrote:\n> a",
            true,
            true,
        ),
        (
            "-----Original Message-----\nFrom: a\nSent: b\nTo: c\nSubject: d\n\nold",
            true,
            false,
        ),
        ("\u{200b}\n> a", true, false),
    ];
    for (body, removed_quote, removed_signature) in cases {
        let v = visible_text(body);
        assert!(v.only_quotes && v.text.is_empty(), "{body:?}: {v:?}");
        assert_eq!(
            (v.removed_quote, v.removed_signature),
            (removed_quote, removed_signature),
            "{body:?}: {v:?}"
        );
    }
}

/// `(client, html, visible, inline)`.
#[test]
fn html_reply_containers_of_common_clients() {
    let cases = [
        (
            "Gmail",
            "<div dir=\"ltr\">Answer</div><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">\
             On Mon, Apr 2, 2012 at 6:26 PM Megan &lt;<a href=\"mailto:m@x.y\">m@x.y</a>&gt; wrote:<br></div>\
             <blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid\">Old<br>text</blockquote></div>",
            "Answer",
            false,
        ),
        (
            "Gmail, unknown language and a signature",
            "<div dir=\"ltr\">Answer<br clear=\"all\"><br>-- <br><div class=\"gmail_signature\">Bob<br>ACME</div></div>\
             <div class=\"gmail_quote\"><div class=\"gmail_attr\">Ngày 2 tháng 4, Megan đã viết:</div>\
             <blockquote class=\"gmail_quote\">Old</blockquote></div>",
            "Answer",
            false,
        ),
        (
            "Gmail inline reply",
            "<div>See below.</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, Apr 2, 2012 at 6:26 PM M &lt;m@x.y&gt; wrote:</div>\
             <blockquote class=\"gmail_quote\">Question one?</blockquote><div>Answer one.</div>\
             <blockquote class=\"gmail_quote\">Question two?</blockquote><div>Answer two.</div>\
             <blockquote class=\"gmail_quote\">Regards</blockquote></div>",
            "See below.\n> Question one?\nAnswer one.\n> Question two?\nAnswer two.",
            true,
        ),
        (
            "Outlook on the web",
            "<div id=\"divtagdefaultwrapper\"><p>Answer</p></div><div id=\"appendonsend\"></div><hr style=\"display:inline-block;width:98%\">\
             <div id=\"divRplyFwdMsg\" dir=\"ltr\"><font><b>From:</b> Megan<br><b>Sent:</b> Monday<br><b>To:</b> bob<br><b>Subject:</b> Test</font></div>\
             <div>Old text</div>",
            "Answer",
            false,
        ),
        (
            "Outlook desktop",
            "<div class=WordSection1><p class=MsoNormal>Answer<o:p></o:p></p><p class=MsoNormal>Bob<o:p></o:p></p>\
             <div><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'><p class=MsoNormal>\
             <b>De&nbsp;:</b> Megan<br><b>Envoyé&nbsp;:</b> lundi<br><b>À&nbsp;:</b> bob<br><b>Objet&nbsp;:</b> Test</p></div></div>\
             <p class=MsoNormal>Old text</p></div>",
            "Answer\nBob",
            false,
        ),
        (
            "Apple Mail, header inside the quote",
            "<html><body><div>Answer</div><div><br><blockquote type=\"cite\"><div>On 22 Aug 2015, at 19:21, Adam &lt;a@x.y&gt; wrote:</div>\
             <br class=\"Apple-interchange-newline\"><div>Old</div></blockquote></div><br></body></html>",
            "Answer",
            false,
        ),
        (
            "Apple Mail, header above the quote",
            "<div>Answer</div><div><br><div>Le 2 avr. 2012 à 18:26, Megan &lt;m@x.y&gt; a écrit :</div><br><blockquote type=\"cite\"><div>Old</div></blockquote></div>",
            "Answer",
            false,
        ),
        (
            "Thunderbird",
            "<p>Answer</p><div class=\"moz-signature\">-- <br>Bob</div><div class=\"moz-cite-prefix\">On 02/04/2012 18:26, Megan wrote:<br></div>\
             <blockquote type=\"cite\" cite=\"mid:x@y\">Old</blockquote>",
            "Answer",
            false,
        ),
        (
            "Thunderbird bottom-posted",
            "<div class=\"moz-cite-prefix\">Am 02.04.2012 um 18:26 schrieb Megan:<br></div><blockquote type=\"cite\">Old</blockquote><br>Answer<br>",
            "Answer",
            false,
        ),
        (
            "bare trailing blockquote",
            "Answer<blockquote>Old</blockquote>",
            "Answer",
            false,
        ),
    ];
    for (client, html, visible, inline) in cases {
        let v = visible_html(html);
        assert_eq!(v.text, visible, "{client}: {html:?}");
        assert_eq!(v.inline_reply, inline, "{client}: {v:?}");
        assert!(v.removed_quote && !v.only_quotes, "{client}: {v:?}");
    }
    // Own text in a bare gmail_quote container (ruby-mail's
    // two_from_in_message.eml) is kept.
    let v = visible_html(
        "<div class=\"gmail_quote\"><div class=\"gmail_quote\"><div>When sending email:</div>* From Hotmail</div></div>",
    );
    assert_eq!(v.text, "When sending email:\n* From Hotmail", "{v:?}");
    let only_quotes = [
        "<div class=\"gmail_quote\">On Mon, Apr 2, 2012 at 6:26 PM M &lt;m@x.y&gt; wrote:<blockquote>Old</blockquote></div>",
        "<div id=\"appendonsend\"></div><div id=\"divRplyFwdMsg\"><b>From:</b> M</div><div>Old</div>",
        "<br><blockquote type=\"cite\">Old</blockquote>",
        "",
    ];
    for html in only_quotes {
        let v = visible_html(html);
        assert!(v.only_quotes && v.text.is_empty(), "{html:?}: {v:?}");
    }
}

fn assert_fast(what: &str, input: &str, html: bool) {
    let started = Instant::now();
    let v = if html {
        visible_html(input)
    } else {
        visible_text(input)
    };
    let elapsed = started.elapsed();
    // Megabytes of input in a debug build on a busy machine: seconds at
    // worst when linear, hours when quadratic.
    // a hang guard, not a speed measurement: linear work takes seconds at
    // worst on a loaded machine, quadratic work hours
    assert!(elapsed < Duration::from_secs(60), "{what}: {elapsed:?}");
    drop(v);
}

#[test]
fn pathological_input_is_linear() {
    let cases = [
        ("100k '>' lines", ">\n".repeat(100_000)),
        ("one 1 MB '>' line", ">".repeat(1_000_000)),
        (
            "100k quote headers",
            "On Mon, Apr 2, 2012 at 6:26 PM, M <m@x.y> wrote:\n".repeat(100_000),
        ),
        (
            "100k verb-only headers",
            "2 апреля 2012 г., 18:26 <m@x.y> написал:\n".repeat(100_000),
        ),
        ("100k To: lines", "To: x\n".repeat(100_000)),
        ("100k From: lines", "From: x\nx\n".repeat(100_000)),
        ("100k colon lines", "a 12:30 b <c@d>:\n".repeat(100_000)),
        ("100k signature lines", "-- \n".repeat(100_000)),
        (
            "100k markers",
            "-----Original Message-----\n".repeat(100_000),
        ),
        ("100k answer/quote pairs", "a\n> q\n".repeat(100_000)),
        ("long line ending with a colon", "x".repeat(1_000_000) + ":"),
        ("many blank lines", "\n".repeat(300_000) + "x"),
        ("many \\r", "\r".repeat(300_000)),
    ];
    for (what, input) in &cases {
        assert_fast(what, input, false);
        assert_fast(what, input, true);
    }
}

/// Tricky fragments stitched together by a fixed-seed generator: nothing
/// may panic (slicing inside a multi-byte char, an index past the end…).
#[test]
fn arbitrary_input_never_panics() {
    let pieces = [
        "\n",
        "\r\n",
        ">",
        "> ",
        "On ",
        " wrote:",
        "：",
        "a écrit :",
        "написал:",
        "-- ",
        "--",
        "___________",
        "From: ",
        "Sent: ",
        "To: ",
        "Subject: ",
        "-----Original Message-----",
        "é",
        "日本",
        "\u{200b}",
        "\u{a0}",
        "<",
        ">",
        "</",
        "<div>",
        "<blockquote>",
        "</blockquote>",
        "<br>",
        "&",
        "&#",
        "&#x",
        ";",
        "<!--",
        "-->",
        "\"",
        "'",
        "=",
        "<a href=\"https://x\">",
        "<div class=gmail_quote>",
        "12:30",
        "@",
        "Sent from my iPhone",
        "-Bob",
        "#",
        "<hr id=stopSpelling>",
        "<div style=\"border-top:1px\">",
        "<style>",
        "</style",
        "<pre>",
        "</pre>",
        "\t",
        " ",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..3000 {
        let mut input = String::new();
        let len = (seed % 40) as usize;
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            input.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        let _ = visible_text(&input);
        let _ = visible_html(&input);
        let _ = visible_text_with(
            &input,
            Options {
                strip_signature: false,
                ..Options::default()
            },
        );
    }
}
