//! Issue 16: the shapes real clients write, in many languages, each as a
//! table row (`header or shape`, `language/client`). Pure and fast.

use super::*;

const ANSWER: &str = "Merci, le remboursement est parti.\nThe refund is on its way.";
const ORIGINAL: &str = "My printer is on fire.\nPlease help.";

/// Quote headers ("On … wrote:") in at least 20 languages, as Gmail,
/// Apple Mail, Thunderbird and Outlook write them, some split over two or
/// three lines, some with only a date or only an address.
const HEADERS: &[(&str, &str)] = &[
    (
        "On Wed, Dec 2, 2026 at 6:24 PM ACME Support <support@acme.test> wrote:",
        "en Gmail",
    ),
    (
        "On Wed, Dec 2, 2026 at 6:24 PM ACME Support <\nsupport@acme.test> wrote:",
        "en Gmail, address split",
    ),
    (
        "On Wed, Dec 2, 2026 at 6:24 PM\nACME Support <support@acme.test>\nwrote:",
        "en, three lines",
    ),
    (
        "On 2 Dec 2026, at 18:24, ACME Support wrote:",
        "en, date only",
    ),
    ("<support@acme.test> wrote:", "en, address only"),
    (
        "2026-12-02 18:24 GMT+00:00 ACME Support <\nsupport@acme.test>:",
        "Gmail split date header, no verb",
    ),
    (
        "On Wednesday, December 2, 2026, 06:24:00 PM GMT, ACME Support <support@acme.test> wrote:",
        "en Yahoo",
    ),
    (
        "Le mer. 2 déc. 2026 à 18:24, ACME Support <support@acme.test> a écrit :",
        "fr Gmail",
    ),
    (
        "Le mer. 2 déc. 2026 à 18:24, ACME Support <\nsupport@acme.test> a écrit :",
        "fr Gmail, split",
    ),
    (
        "Am Mi., 2. Dez. 2026 um 18:24 Uhr schrieb ACME Support <\nsupport@acme.test>:",
        "de Gmail, split",
    ),
    (
        "Am 02.12.2026 um 18:24 schrieb ACME Support:",
        "de Apple Mail",
    ),
    (
        "El mié, 2 dic 2026 a las 18:24, ACME Support (<support@acme.test>)\nescribió:",
        "es Gmail, split",
    ),
    (
        "Il giorno mer 2 dic 2026 alle ore 18:24 ACME Support <support@acme.test> ha scritto:",
        "it Gmail",
    ),
    (
        "Op wo 2 dec. 2026 om 18:24 schreef ACME Support <support@acme.test>:",
        "nl Gmail",
    ),
    (
        "Em qua., 2 de dez. de 2026 às 18:24, ACME Support <support@acme.test> escreveu:",
        "pt Gmail",
    ),
    (
        "śr., 2 gru 2026 o 18:24 ACME Support <support@acme.test> napisał(a):",
        "pl Gmail",
    ),
    (
        "Den ons 2 dec. 2026 kl 18:24 skrev ACME Support <support@acme.test>:",
        "sv Gmail",
    ),
    (
        "ons. 2. dec. 2026 kl. 18.24 skrev ACME Support <support@acme.test>:",
        "da Gmail",
    ),
    (
        "ke 2. jouluk. 2026 klo 18.24 ACME Support (support@acme.test) kirjoitti:",
        "fi Gmail",
    ),
    (
        "ср, 2 дек. 2026 г. в 18:24, ACME Support <support@acme.test>:",
        "ru Gmail (no verb)",
    ),
    (
        "ср, 2 груд. 2026 р. о 18:24 ACME Support <support@acme.test> пише:",
        "uk Gmail",
    ),
    (
        "st 2. 12. 2026 v 18:24 odesílatel ACME Support <support@acme.test> napsal:",
        "cs Gmail",
    ),
    (
        "ACME Support <support@acme.test>, 2 Ara 2026 Çar, 18:24 tarihinde şunu yazdı:",
        "tr Gmail",
    ),
    (
        "ACME Support <support@acme.test> ezt írta (időpont: 2026. dec. 2., Sze, 18:24):",
        "hu Gmail",
    ),
    (
        "În mie., 2 dec. 2026 la 18:24, ACME Support <support@acme.test> a scris:",
        "ro Gmail",
    ),
    (
        "Στις Τετ 2 Δεκ 2026 στις 6:24 μ.μ., ο/η ACME Support <support@acme.test> έγραψε:",
        "el Gmail",
    ),
    (
        "2026年12月2日(水) 18:24 ACME Support <support@acme.test>:",
        "ja Gmail",
    ),
    (
        "ACME Support <support@acme.test> 于2026年12月2日周三 18:24写道：",
        "zh Gmail",
    ),
    (
        "2026년 12월 2일 (수) 오후 6:24, ACME Support <support@acme.test>님이 작성:",
        "ko Gmail",
    ),
    (
        "\u{202b}في الأربعاء، 2 ديسمبر 2026 في 6:24 م تمت كتابة ما يلي بواسطة \u{202a}ACME Support\u{202c}\u{200f} <\u{202a}support@acme.test\u{202c}\u{200f}>:\u{202c}",
        "ar Gmail, direction marks",
    ),
    (
        "\u{202b}בתאריך יום ד׳, 2 בדצמ׳ 2026 ב-18:24 מאת \u{202a}ACME Support\u{202c}\u{200f} <\u{202a}support@acme.test\u{202c}\u{200f}>:\u{202c}",
        "he Gmail, direction marks",
    ),
    (
        "El dc., 2 de des. 2026 a les 18:24, ACME Support (<support@acme.test>) va escriure:",
        "ca Gmail",
    ),
    (
        "Pada tanggal Rab, 2 Des 2026 18.24, ACME Support <support@acme.test> menulis:",
        "id Gmail",
    ),
    (
        "Vào Th 4, 2 thg 12, 2026 vào lúc 18:24 ACME Support <support@acme.test> đã viết:",
        "vi Gmail",
    ),
    (
        "sri, 2. pro 2026. u 18:24 ACME Support <support@acme.test> je napisao:",
        "hr Gmail",
    ),
    (
        "ср, 2.12.2026 г. в 18:24 ч. ACME Support <support@acme.test> написа:",
        "bg Gmail",
    ),
    (
        "On Wed, 02 Dec 2026 18:24:00 +0000 ACME Support <support@acme.test> wrote",
        "en webmail, no colon",
    ),
];

/// Each header above a `>` block, then above an unprefixed copy (Outlook
/// and phones), under the answer: only the answer is left.
#[test]
fn quote_headers_in_twenty_languages_cut_the_history() {
    let mut failures = Vec::new();
    for (header, why) in HEADERS {
        let quoted = format!(
            "{ANSWER}\n\n{header}\n\n> {}\n",
            ORIGINAL.replace('\n', "\n> ")
        );
        let unprefixed = format!("{ANSWER}\n\n{header}\n\n{ORIGINAL}\n");
        for body in [quoted, unprefixed] {
            let v = visible_text(&body);
            if v.text != ANSWER || !v.removed_quote {
                failures.push(format!("{why}: {body:?} gave {:?}", v.text));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// "Original Message", "Forwarded message" markers and Outlook header
/// blocks, in their localised forms, with the copy under them.
#[test]
fn localised_markers_and_outlook_blocks_cut_the_history() {
    let blocks: &[(&str, &str)] = &[
        ("-----Original Message-----", "en"),
        ("---------- Forwarded message ---------", "en Gmail forward"),
        ("----- Forwarded Message -----", "en Yahoo forward"),
        ("Begin forwarded message:", "en Apple Mail"),
        ("-------- Message d'origine --------", "fr"),
        ("---------- Message transféré ---------", "fr forward"),
        ("-----Ursprüngliche Nachricht-----", "de"),
        (
            "---------- Weitergeleitete Nachricht ---------",
            "de forward",
        ),
        ("-------- Mensaje original --------", "es"),
        ("---------- Messaggio inoltrato ---------", "it forward"),
        ("-------- Oorspronkelijk bericht --------", "nl"),
        ("-------- Mensagem original --------", "pt"),
        ("-------- Oryginalna wiadomość --------", "pl"),
        ("-------- Oprindelig besked --------", "da"),
        ("-------- Ursprungligt meddelande --------", "sv"),
        ("-------- Исходное сообщение --------", "ru"),
        ("-------- Původní zpráva --------", "cs"),
        ("-------- Eredeti üzenet --------", "hu"),
        ("-------- Orijinal mesaj --------", "tr"),
        ("-------- 原始邮件 --------", "zh"),
        (
            "============ Forwarded message ============",
            "Zoho forward",
        ),
        (
            "________________________________\nFrom: ACME Support <support@acme.test>\nSent: Wednesday, December 2, 2026 6:24 PM\nTo: Client <client@example.test>\nSubject: Your request",
            "en Outlook",
        ),
        (
            "De : ACME Support <support@acme.test>\nEnvoyé : mercredi 2 décembre 2026 18:24\nÀ : Client <client@example.test>\nObjet : Votre demande",
            "fr Outlook",
        ),
        (
            "Von: ACME Support <support@acme.test>\nGesendet: Mittwoch, 2. Dezember 2026 18:24\nAn: Client <client@example.test>\nBetreff: Ihre Anfrage",
            "de Outlook",
        ),
        (
            "De: ACME Support <support@acme.test>\nEnviado: miércoles, 2 de diciembre de 2026 18:24\nPara: Client <client@example.test>\nAsunto: Su solicitud",
            "es Outlook",
        ),
        (
            "Da: ACME Support <support@acme.test>\nInviato: mercoledì 2 dicembre 2026 18:24\nA: Client <client@example.test>\nOggetto: La sua richiesta",
            "it Outlook",
        ),
        (
            "Van: ACME Support <support@acme.test>\nVerzonden: woensdag 2 december 2026 18:24\nAan: Client <client@example.test>\nOnderwerp: Uw vraag",
            "nl Outlook",
        ),
        (
            "De: ACME Support <support@acme.test>\nEnviada em: quarta-feira, 2 de dezembro de 2026 18:24\nPara: Client <client@example.test>\nAssunto: Seu pedido",
            "pt Outlook",
        ),
        (
            "Od: ACME Support <support@acme.test>\nWysłano: środa, 2 grudnia 2026 18:24\nDo: Client <client@example.test>\nTemat: Twoje zgłoszenie",
            "pl Outlook",
        ),
        (
            "Från: ACME Support <support@acme.test>\nSkickat: den 2 december 2026 18:24\nTill: Client <client@example.test>\nÄmne: Ditt ärende",
            "sv Outlook",
        ),
        (
            "Lähettäjä: ACME Support <support@acme.test>\nLähetetty: keskiviikko 2. joulukuuta 2026 18.24\nVastaanottaja: Client <client@example.test>\nAihe: Pyyntösi",
            "fi Outlook",
        ),
        (
            "От: ACME Support <support@acme.test>\nОтправлено: 2 декабря 2026 г. 18:24\nКому: Client <client@example.test>\nТема: Ваш запрос",
            "ru Outlook",
        ),
        (
            "Od: ACME Support <support@acme.test>\nOdesláno: středa 2. prosince 2026 18:24\nKomu: Client <client@example.test>\nPředmět: Váš požadavek",
            "cs Outlook",
        ),
        (
            "Kimden: ACME Support <support@acme.test>\nGönderildi: 2 Aralık 2026 Çarşamba 18:24\nKime: Client <client@example.test>\nKonu: Talebiniz",
            "tr Outlook",
        ),
        (
            "Feladó: ACME Support <support@acme.test>\nElküldve: 2026. december 2. 18:24\nCímzett: Client <client@example.test>\nTárgy: Kérése",
            "hu Outlook",
        ),
        (
            "差出人: ACME Support <support@acme.test>\n送信日時: 2026年12月2日 18:24\n宛先: Client <client@example.test>\n件名: お問い合わせ",
            "ja Outlook",
        ),
        (
            "发件人: ACME Support <support@acme.test>\n发送时间: 2026年12月2日 18:24\n收件人: Client <client@example.test>\n主题: 您的请求",
            "zh Outlook",
        ),
        (
            "보낸 사람: ACME Support <support@acme.test>\n보낸 날짜: 2026년 12월 2일 수요일 오후 6:24\n받는 사람: Client <client@example.test>\n제목: 문의",
            "ko Outlook",
        ),
        (
            "====\n\nMessage du : 02/12/2026 18:24\nDe : \"ACME Support\" <support@acme.test>\nA : client@example.test\nSujet : Votre demande",
            "fr webmail",
        ),
    ];
    let mut failures = Vec::new();
    for (block, why) in blocks {
        let body = format!("{ANSWER}\n\n{block}\n\n{ORIGINAL}\n");
        let v = visible_text_with(
            &body,
            Options {
                strip_signature: false,
                ..Options::default()
            },
        );
        if v.text != ANSWER || !v.removed_quote {
            failures.push(format!("{why}: gave {:?}", v.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Zoho's `---- On … wrote ----` in several languages, with the copy
/// unprefixed or `|`-prefixed; Yahoo, iOS and Android Outlook shapes.
#[test]
fn client_shapes_leave_only_the_answer() {
    let shapes: &[(&str, &str)] = &[
        (
            "---- On Wed, 02 Dec 2026 18:24:00 +0000 ACME Support <support@acme.test> wrote ----\n\nMy printer is on fire.",
            "Zoho en, unprefixed",
        ),
        (
            "---- On Wed, 02 Dec 2026 18:24:00 +0000 ACME Support <support@acme.test> wrote ----\n\n| My printer is on fire.\n|\n| Please help.",
            "Zoho en, bar quotes",
        ),
        (
            "---- Le mer., 02 déc. 2026 18:24:00 +0000 ACME Support <support@acme.test> a écrit ----\n\n| Mon imprimante brûle.",
            "Zoho fr",
        ),
        (
            "---- Am Mi, 02 Dez 2026 18:24:00 +0000 schrieb ACME Support <support@acme.test> ----\n\n| Mein Drucker brennt.",
            "Zoho de",
        ),
        (
            "---- El mié, 02 dic 2026 18:24:00 +0000 ACME Support <support@acme.test> escribió ----\n\nMi impresora arde.",
            "Zoho es",
        ),
        (
            "Sent from Yahoo Mail on Android\n\n  On Wed, Dec 2, 2026 at 18:24, ACME Support<support@acme.test> wrote:   My printer is on fire.",
            "Yahoo Android (header and copy on one line)",
        ),
        (
            "Get Outlook for iOS<https://aka.ms/o0ukef>\n________________________________\nFrom: ACME Support <support@acme.test>\nSent: Wednesday, December 2, 2026 6:24:00 PM\nTo: Client <client@example.test>\nSubject: Your request\n\nMy printer is on fire.",
            "Outlook iOS",
        ),
        (
            "Get Outlook for Android<https://aka.ms/ghei36>\n\nFrom: ACME Support <support@acme.test>\nSent: Wednesday, December 2, 2026 6:24:00 PM\nTo: Client <client@example.test>\nSubject: Your request\n\nMy printer is on fire.",
            "Outlook Android",
        ),
        (
            "Outlook für Android beziehen<https://aka.ms/ghei36>\n\nVon: ACME Support <support@acme.test>\nGesendet: Mittwoch, 2. Dezember 2026 18:24\nAn: Client <client@example.test>\nBetreff: Ihre Anfrage\n\nMein Drucker brennt.",
            "Outlook Android de",
        ),
        (
            "Envoyé à partir de Outlook pour iOS<https://aka.ms/o0ukef>\n________________________________\nDe : ACME Support <support@acme.test>\nEnvoyé : mercredi 2 décembre 2026 18:24\nÀ : Client <client@example.test>\nObjet : Votre demande\n\nMon imprimante brûle.",
            "Outlook iOS fr",
        ),
        (
            "Sent from my iPhone\n\n> On 2 Dec 2026, at 18:24, ACME Support <support@acme.test> wrote:\n>\n> My printer is on fire.",
            "iOS Mail",
        ),
    ];
    let mut failures = Vec::new();
    for (shape, why) in shapes {
        let body = format!("{ANSWER}\n\n{shape}\n");
        let v = visible_text(&body);
        if v.text != ANSWER {
            failures.push(format!("{why}: gave {:?}", v.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Phones' and clients' one-line signatures in many languages, last or
/// above an unprefixed copy.
#[test]
fn mobile_signatures_in_many_languages_are_removed() {
    let signatures = [
        "Sent from my iPhone",
        "Sent from my iPad",
        "Sent from my Samsung Galaxy smartphone.",
        "Sent from my Samsung Galaxy S23 Ultra, an AT&T 5G Evolution capable smartphone",
        "Sent from my Huawei phone",
        "Sent from Outlook for Android",
        "Sent from Mail for Windows",
        "Sent from Yahoo Mail for iPhone",
        "Sent from TypeApp<http://www.typeapp.com/r?b=2621>",
        "Get Outlook for iOS",
        "Outlook für Android herunterladen<https://aka.ms/AAb9ysg>",
        "Envoyé depuis mon iPhone",
        "Envoyé de mon iPhone",
        "Von meinem iPhone gesendet",
        "Von meinem Mobilgerät gesendet",
        "Gesendet von Outlook für Android<https://aka.ms/AAb9ysg>",
        "Enviado desde mi iPhone",
        "Enviado do meu iPhone",
        "Inviato da iPhone",
        "Verzonden vanaf mijn iPhone",
        "Wysłane z iPhone'a",
        "Skickat från min iPhone",
        "Sendt fra min iPhone",
        "Lähetetty iPhonesta",
        "Odesláno z iPhonu",
        "iPhone'umdan gönderildi",
        "Trimis de pe iPhone-ul meu",
        "Отправлено с iPhone",
        "Надіслано з iPhone",
        "iPhoneから送信",
        "发自我的iPhone",
        "iPhone에서 보냄",
        "Enviat des del meu iPhone",
        "Dikirim dari iPhone saya",
    ];
    let mut failures = Vec::new();
    for sig in signatures {
        for body in [
            format!("{ANSWER}\n\n{sig}\n"),
            format!("{ANSWER}\n\n{sig}\n\n{ORIGINAL}\n"),
        ] {
            let v = visible_text(&body);
            if v.text != ANSWER || !v.removed_signature {
                failures.push(format!("{sig}: {body:?} gave {:?}", v.text));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A closing ("Regards,") and the name block under it, in several
/// languages; "Thanks," and "Sincerely," stay.
#[test]
fn closings_open_a_signature() {
    for closing in [
        "Regards,",
        "Best regards,",
        "Kind regards",
        "Cordialement,",
        "Mit freundlichen Grüßen",
        "Saludos,",
        "Cordiali saluti",
        "Met vriendelijke groet,",
        "Atenciosamente,",
        "Pozdrawiam",
        "С уважением,",
        "Med vänliga hälsningar",
    ] {
        let body = format!("{ANSWER}\n\n{closing}\n\nJane Doe\nSupport, ACME\n");
        assert_eq!(visible_text(&body).text, ANSWER, "{closing}");
    }
    for kept in [
        "Thanks,\nJane",
        "Sincerely,\nJane Doe",
        "Regards to your team, and see you soon.",
    ] {
        let body = format!("{ANSWER}\n\n{kept}");
        assert_eq!(visible_text(&body).text, body, "{kept}");
    }
}

/// What looks like history but is the author's own text stays.
#[test]
fn look_alikes_stay() {
    let bodies = [
        "Here is what the customer wrote: the printer burns.\n\nWe replaced it.",
        "As our engineer wrote:\n\nRestart the printer first.",
        "Check https://example.com/blog/she-wrote:2026 for details.",
        "I wanted to talk with regards to the payment.\nRegards to the team as well.\n\nIt is done.",
        "Run this:\n\n    if a > b:\n        print(a)\n    # -- done --\n\nThen restart.",
        "The notification was sent from my iPhone app to all users.\n\nIt works now.",
        "Sent from my desk, is much easier than my phone.\n\nDone.",
        "Sent using the form below\n\nName: Ann\nOrder: 42",
        "On Monday we ship the fix.\n\nOn Tuesday it will be live.",
        "From: the billing team\n\nYour invoice is attached.",
        "The meeting is on 02.12.2026 at 18:24, write to <support@acme.test>\n\nThanks.",
        "Please send it back before 12.05.2026 to our returns desk <returns@acme.test>:\n\nACME Returns\n1 Main Street",
    ];
    for body in bodies {
        let v = visible_text(body);
        assert_eq!(v.text, body, "{body:?}: {v:?}");
        assert!(!v.removed_quote, "{body:?}: {v:?}");
    }
}

/// Interleaved answers: each answer keeps the question lines right above
/// it, at most six, never older nested quotes nor what lies between.
#[test]
fn interleaved_answers_keep_just_their_questions() {
    let body = "Hello,\n\nOn Wed, Dec 2, 2026 at 6:24 PM Client <client@example.test> wrote:\n\
        > Thanks for the quick reply.\n\
        >\n\
        > About the order:\n\
        > 1. line one of a long story\n\
        > 2. line two\n\
        > 3. line three\n\
        > 4. line four\n\
        > 5. line five\n\
        > 6. line six\n\
        > Where is my parcel?\n\
        \n\
        It left our warehouse today.\n\
        \n\
        >> On Tue, Dec 1, 2026, ACME wrote:\n\
        >> Old history that must not be relayed.\n\
        > Can I change the address?\n\
        \n\
        Yes, reply with the new one.\n\
        \n\
        > Thanks again\n\
        > Client\n";
    let v = visible_text(body);
    assert_eq!(
        v.text,
        "Hello,\n\n\
         > 2. line two\n\
         > 3. line three\n\
         > 4. line four\n\
         > 5. line five\n\
         > 6. line six\n\
         > Where is my parcel?\n\
         \n\
         It left our warehouse today.\n\
         \n\
         > Can I change the address?\n\
         \n\
         Yes, reply with the new one."
    );
    assert!(v.inline_reply && v.removed_quote && !v.only_quotes, "{v:?}");
}

/// The same rules over a wrapped quote: a long `>` line whose end the
/// client wrapped without `>` belongs to the quote.
#[test]
fn wrapped_quote_lines_stay_in_the_quote() {
    let body = format!(
        "{ANSWER}\n\nOn Wed, Dec 2, 2026 at 6:24 PM ACME Support <support@acme.test> wrote:\n\
         > This is a rather long quoted line that the replying client wrapped at\n\
         seventy-two columns without its prefix.\n> Bye.\n"
    );
    assert_eq!(visible_text(&body).text, ANSWER);
}

/// An answer typed right under a long question, no blank line between,
/// is an answer, not a wrapped quote line.
#[test]
fn a_lowercase_answer_under_a_long_question_is_an_answer() {
    let body = "> Could you please confirm the new delivery address and the date for the parcel?\n\
                yes, both are confirmed.\n\
                \n\
                > And can the courier call me before coming to the door with it, please\n\
                sure, he will.\n\
                \n\
                > Thanks";
    let v = visible_text(body);
    assert_eq!(
        v.text,
        "> Could you please confirm the new delivery address and the date for the parcel?\n\
         yes, both are confirmed.\n\
         \n\
         > And can the courier call me before coming to the door with it, please\n\
         sure, he will."
    );
}

/// The new rules keep the linear-time property: each shape repeated 30k
/// times (and the arbitrary fragments of `tests.rs`, with these pieces)
/// takes seconds at worst, not hours, and never panics.
#[test]
fn hostile_repeats_of_the_new_shapes_stay_linear() {
    // enough for quadratic work to take minutes
    const N: usize = 30_000;
    let long_quote = format!("> {}\nlowercase tail\n", "q".repeat(70));
    let cases = [
        (
            "split Gmail headers",
            "2026-12-02 18:24 GMT A <\na@b.c>:\n".repeat(N),
        ),
        ("dangling `>:` lines", "x <a@b\n>:\n".repeat(N)),
        ("wrapped quote lines", long_quote.repeat(N)),
        ("mobile signatures", "text\nSent from my iPhone\n".repeat(N)),
        ("suffix signatures", "iPhone'umdan gönderildi\n".repeat(N)),
        ("closings", "Regards,\n".repeat(N)),
        ("closings under text", "text\n\nRegards,\nBob\n".repeat(N)),
        (
            "no-colon headers",
            "On 2 Dec 2026 A <a@b.c> wrote\n".repeat(N),
        ),
        (
            "dated addresses",
            "30.09.2017, 18.30, \"A\" <a@b.c>:\n".repeat(N),
        ),
        (
            "interleaved answers",
            "> q\n>> old\n> q2\n\na\n\n".repeat(N),
        ),
        (
            "Zoho headers",
            "---- Am 2 Dez 2026 schrieb A <a@b> ----\n".repeat(N),
        ),
        ("direction marks", "\u{202b}\u{202c}:\n".repeat(N)),
        (
            "one long `<` line",
            format!("a 12:30 <{}@", "x".repeat(1_000_000)),
        ),
    ];
    for (what, input) in &cases {
        let started = std::time::Instant::now();
        let _ = visible_text(input);
        let _ = visible_text_with(
            input,
            Options {
                whole_inline_quotes: true,
                ..Options::default()
            },
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed < std::time::Duration::from_secs(60),
            "{what}: {elapsed:?}"
        );
    }
    // arbitrary stitching of the new shapes' pieces: no panic
    let pieces = [
        "\n",
        ">",
        ">:",
        "> ",
        "|",
        "<",
        "@",
        "a@b",
        ":",
        "12:30",
        "2026",
        "Am ",
        " schrieb ",
        "----",
        "wrote",
        "Sent from my ",
        "gönderildi",
        "iPhone",
        "Regards,",
        "\u{202b}",
        "\u{202c}",
        "é",
        "日本",
        "Outlook für Android herunterladen",
        "<https://x>",
        "q",
    ];
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..3000 {
        let mut input = String::new();
        for _ in 0..(seed % 40) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            input.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        let v = visible_text(&input);
        assert_eq!(v.only_quotes, v.text.trim().is_empty(), "{input:?}");
    }
}
