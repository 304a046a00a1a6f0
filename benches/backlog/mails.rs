//! The benchmark's mail: a realistic support backlog, deterministic for a
//! given size. A fifth comes from the real-world corpus (`../shared/corpus`,
//! read in place, never copied: part of it is GPL/AGPL), each copy with a
//! unique Message-ID and its To rewritten to the support address; the rest
//! is generated customer mail: new questions, replies quoting an earlier
//! message (threaded by In-Reply-To/References), HTML mail, small image
//! attachments (accepted) and a few PDFs (refused by the default policy).

use std::path::{Path, PathBuf};

/// Deterministic pseudo-random numbers (SplitMix64): the same backlog on
/// every run, without depending on a crate's RNG stream.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Corpus,
    New,
    Reply,
}

pub struct BenchMail {
    pub raw: Vec<u8>,
    /// Envelope sender for LMTP.
    pub sender: String,
    pub kind: Kind,
}

pub fn corpus_dir() -> PathBuf {
    std::env::var_os("GUICHET_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

/// Whole messages of the corpus up to 256 KiB; only one bounce in four of
/// sisimai's 632 (a support mailbox gets bounces, not mostly bounces).
pub fn corpus_messages(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(index) = std::fs::read_to_string(dir.join("index.tsv")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut sisimai = 0usize;
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.get(2) != Some(&"rfc822") {
            continue;
        }
        let size: usize = cols.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
        if size > 256 * 1024 {
            continue;
        }
        if cols[1] == "sisimai" {
            sisimai += 1;
            if !sisimai.is_multiple_of(4) {
                continue;
            }
        }
        if let Ok(raw) = std::fs::read(dir.join(cols[0])) {
            out.push(raw);
        }
    }
    out
}

/// `raw` with its Message-ID and To headers replaced.
pub fn rewrite_headers(raw: &[u8], message_id: &str, to: &str) -> Vec<u8> {
    let header_end = find_header_end(raw);
    let (head, body) = raw.split_at(header_end);
    let mut out = Vec::with_capacity(raw.len() + 128);
    out.extend_from_slice(format!("Message-ID: <{message_id}>\r\nTo: {to}\r\n").as_bytes());
    let mut skipping = false;
    for line in head.split_inclusive(|b| *b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            let lower = line.to_ascii_lowercase();
            skipping = lower.starts_with(b"message-id:") || lower.starts_with(b"to:");
            // an mbox "From " line is not a header
            if line.starts_with(b"From ") {
                skipping = true;
            }
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

/// Offset of the blank line that ends the header (or the end).
fn find_header_end(raw: &[u8]) -> usize {
    let mut pos = 0;
    for line in raw.split_inclusive(|b| *b == b'\n') {
        if line == b"\n" || line == b"\r\n" {
            return pos;
        }
        pos += line.len();
    }
    raw.len()
}

const SUBJECTS: &[&str] = &[
    "Cannot log in since this morning",
    "Invoice 2026-{n} is wrong",
    "Printer on fire again",
    "Question about my order #{n}",
    "Password reset link expired",
    "Export to CSV shows garbled accents",
    "Refund for a duplicate payment",
    "App crashes when I upload a photo",
    "How do I add a second user?",
    "Delivery address change",
    "Error 500 on the dashboard",
    "Données manquantes dans le rapport",
    "Sync stopped working after the update",
    "Request for a quote ({n} seats)",
];

const SENTENCES: &[&str] = &[
    "Hello, I have a problem with my account and I hope you can help.",
    "Since yesterday the page shows an error whenever I try to save.",
    "I already tried clearing the cache and logging in again.",
    "Our team of twelve people depends on this every morning.",
    "Could you please tell me when this will be fixed?",
    "I attached a screenshot of what I see on my screen.",
    "The order number is on the invoice you sent last week.",
    "This worked fine until the last update, as far as I can tell.",
    "We use the desktop version on Windows and the app on Android.",
    "Merci d'avance pour votre aide, c'est assez urgent pour nous.",
    "Is there a workaround I can use in the meantime?",
    "My colleague in accounting sees the same thing.",
    "I would appreciate a call back if that is easier.",
    "The amount charged was twice the price on the website.",
];

fn paragraph(rng: &mut Rng, sentences: usize) -> String {
    (0..sentences)
        .map(|_| SENTENCES[rng.below(SENTENCES.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn wrap_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(b64.len() + b64.len() / 76 * 2 + 2);
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// A PNG signature and IHDR followed by noise: sniffed as image/png.
pub fn fake_png(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x02\x00\x00\x00".to_vec();
    v.extend(rng.bytes(size.saturating_sub(v.len())));
    v
}

fn fake_pdf(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    v.extend(rng.bytes(size.saturating_sub(v.len())));
    v
}

pub struct Customer {
    pub address: String,
    pub name: String,
}

/// A generated customer message; `file` is `(name, type, bytes)`.
#[allow(clippy::too_many_arguments)]
pub fn customer_mail(
    customer: &Customer,
    to: &str,
    subject: &str,
    message_id: &str,
    in_reply_to: Option<&str>,
    text: &str,
    html: bool,
    file: Option<(&str, &str, &[u8])>,
    date: &str,
) -> Vec<u8> {
    let mut h = format!(
        "From: \"{}\" <{}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\nUser-Agent: BenchMail/1.0\r\n",
        customer.name, customer.address
    );
    if let Some(parent) = in_reply_to {
        h.push_str(&format!(
            "In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"
        ));
    }
    let text_part = format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
    );
    let body_part = if html {
        let html_text = text
            .lines()
            .map(|l| format!("<p>{}</p>", l.replace('<', "&lt;")))
            .collect::<String>();
        format!(
            "Content-Type: multipart/alternative; boundary=\"alt-{message_id}\"\r\n\r\n--alt-{message_id}\r\n{text_part}--alt-{message_id}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>{html_text}</body></html>\r\n--alt-{message_id}--\r\n"
        )
    } else {
        text_part
    };
    let mut out = h;
    match file {
        None => out.push_str(&body_part),
        Some((name, ctype, bytes)) => {
            out.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"mix-{message_id}\"\r\n\r\n--mix-{message_id}\r\n{body_part}--mix-{message_id}\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--mix-{message_id}--\r\n",
                wrap_base64(bytes)
            ));
        }
    }
    out.into_bytes()
}

/// `n` messages to `support`: 20% corpus, 55% new customer questions, 25%
/// replies to an earlier generated question of the same customer.
pub fn backlog(n: usize, support: &str, corpus: &[Vec<u8>], tag: &str) -> Vec<BenchMail> {
    let mut rng = Rng::new(0x0067_7569_6368_6574);
    let customers: Vec<Customer> = (0..(n / 2).max(1))
        .map(|i| Customer {
            address: format!("customer{i}@customers.invalid"),
            name: format!("Customer {i}"),
        })
        .collect();
    // (customer, subject, message id) of every generated question so far
    let mut questions: Vec<(usize, String, String)> = Vec::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let date = format!(
            "Wed, 25 Nov 2026 {:02}:{:02}:{:02} +0000",
            8 + i / 3600 % 12,
            i / 60 % 60,
            i % 60
        );
        let roll = rng.below(100);
        if roll < 20 && !corpus.is_empty() {
            let raw = &corpus[rng.below(corpus.len())];
            out.push(BenchMail {
                raw: rewrite_headers(raw, &format!("corpus-{tag}-{i}@bench.invalid"), support),
                sender: "corpus@customers.invalid".into(),
                kind: Kind::Corpus,
            });
            continue;
        }
        let reply = roll >= 75 && !questions.is_empty();
        let message_id = format!("gen-{tag}-{i}@customers.invalid");
        let (who, subject, parent) = if reply {
            let (c, s, id) = questions[rng.below(questions.len())].clone();
            (c, format!("Re: {s}"), Some(id))
        } else {
            let c = rng.below(customers.len());
            let s = SUBJECTS[rng.below(SUBJECTS.len())].replace("{n}", &i.to_string());
            questions.push((c, s.clone(), message_id.clone()));
            (c, s, None)
        };
        let customer = &customers[who];
        let mut text = String::new();
        for p in 0..1 + rng.below(4) {
            if p > 0 {
                text.push_str("\r\n\r\n");
            }
            let sentences = 2 + rng.below(4);
            text.push_str(&paragraph(&mut rng, sentences));
        }
        text.push_str(&format!("\r\n\r\n-- \r\n{}\r\n", customer.name));
        if reply {
            text.push_str("\r\nOn Tue, 24 Nov 2026, Support wrote:\r\n");
            for _ in 0..3 + rng.below(6) {
                text.push_str(&format!("> {}\r\n", SENTENCES[rng.below(SENTENCES.len())]));
            }
        }
        let file_roll = rng.below(100);
        let png;
        let pdf;
        let file = if file_roll < 15 {
            let size = 2_000 + rng.below(30_000);
            png = fake_png(&mut rng, size);
            Some(("screenshot.png", "image/png", png.as_slice()))
        } else if file_roll < 18 {
            let size = 5_000 + rng.below(20_000);
            pdf = fake_pdf(&mut rng, size);
            Some(("statement.pdf", "application/pdf", pdf.as_slice()))
        } else {
            None
        };
        let html = rng.chance(20);
        out.push(BenchMail {
            raw: customer_mail(
                customer,
                support,
                &subject,
                &message_id,
                parent.as_deref(),
                &text,
                html,
                file,
                &date,
            ),
            sender: customer.address.clone(),
            kind: if reply { Kind::Reply } else { Kind::New },
        });
    }
    out
}
