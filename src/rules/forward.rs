//! A message an agent forwards to support to open a ticket for its
//! original sender (issue 20): found inline, below a "Forwarded message"
//! line of the agent's mail client, with the original's header block.
//! (An original attached whole, as `message/rfc822`, is read by the
//! caller from its own headers.)

use crate::domain::EmailAddress;

/// The original message of a forward, as far as the forward shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub from: EmailAddress,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    /// The original's text.
    pub text: String,
    /// The agent's own words above the forward (their commands: `#ack`).
    pub agent_text: String,
}

/// The lines that start a forwarded message, by mail client and
/// language (compared without case and without the dashes around them).
const MARKERS: &[&str] = &[
    "forwarded message",            // Gmail, Thunderbird
    "begin forwarded message:",     // Apple Mail
    "original message",             // Outlook
    "message transféré",            // Gmail (fr)
    "message d'origine",            // Outlook (fr)
    "début du message réexpédié :", // Apple Mail (fr)
    "weitergeleitete nachricht",    // Gmail (de)
    "ursprüngliche nachricht",      // Outlook (de)
    "mensaje reenviado",            // Gmail (es)
    "messaggio inoltrato",          // Gmail (it)
    "doorgestuurd bericht",         // Gmail (nl)
];

/// Header names of the block below the marker, by meaning.
fn field(name: &str) -> Option<&'static str> {
    match name.trim().to_lowercase().as_str() {
        "from" | "de" | "von" | "van" | "da" => Some("from"),
        "subject" | "objet" | "betreff" | "asunto" | "oggetto" | "onderwerp" => Some("subject"),
        "date" | "sent" | "envoyé" | "gesendet" | "datum" | "fecha" | "enviado" | "data"
        | "verzonden" => Some("date"),
        "to" | "à" | "a" | "an" | "para" | "aan" | "cc" => Some("to"),
        _ => None,
    }
}

fn is_marker(line: &str) -> bool {
    let core = line
        .trim()
        .trim_matches(|c: char| c == '-' || c == '_' || c == '>' || c.is_whitespace())
        .to_lowercase();
    !core.is_empty() && MARKERS.iter().any(|m| core == *m)
}

/// `Jane Doe <jane@x.test>`, `jane@x.test`, `"Doe, Jane" <jane@x.test>`,
/// `Jane Doe [mailto:jane@x.test]` (Outlook).
fn parse_from(value: &str) -> Option<(EmailAddress, Option<String>)> {
    let v = value.trim();
    let (name, addr) = if let Some(open) = v.rfind('<') {
        let close = v[open..].find('>')? + open;
        (v[..open].trim(), &v[open + 1..close])
    } else if let Some(open) = v.find("[mailto:") {
        let close = v[open..].find(']')? + open;
        (v[..open].trim(), &v[open + 8..close])
    } else {
        ("", v)
    };
    let address = EmailAddress::parse(addr.trim()).ok()?;
    let name = name.trim_matches('"').trim();
    Some((address, (!name.is_empty()).then(|| name.to_string())))
}

/// The first forwarded message in `text`, if there is one with a sender.
pub fn find(text: &str) -> Option<Forwarded> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| is_marker(l))?;
    let agent_text = lines[..start].join("\n").trim().to_string();
    // the header block: `Name: value` lines (Thunderbird puts a tab after
    // the colon), up to the first blank line after one was seen
    let (mut from, mut subject, mut date) = (None, None, None);
    let mut i = start + 1;
    let mut seen = false;
    while i < lines.len() {
        let line = lines[i].trim_start_matches('>').trim();
        if line.is_empty() {
            if seen {
                break;
            }
            i += 1;
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            break;
        };
        match field(name) {
            Some("from") => from = parse_from(value),
            Some("subject") => subject = Some(value.trim().to_string()),
            Some("date") => date = Some(value.trim().to_string()),
            Some(_) => {}
            None if !seen => return None,
            None => break,
        }
        seen = true;
        i += 1;
    }
    let (from, from_name) = from?;
    let text = lines[i.min(lines.len())..]
        .iter()
        .map(|l| {
            l.strip_prefix("> ")
                .or_else(|| l.strip_prefix('>'))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string();
    Some(Forwarded {
        from,
        from_name,
        subject,
        date,
        text,
        agent_text,
    })
}

/// The agent asked for the customer to be acknowledged (`#ack` on a
/// line of their own words).
pub fn asks_for_ack(agent_text: &str) -> bool {
    agent_text
        .lines()
        .any(|l| l.trim().eq_ignore_ascii_case("#ack"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> EmailAddress {
        EmailAddress::parse("jane@home.test").unwrap()
    }

    #[test]
    fn forwards_of_the_common_clients_are_read() {
        let table: &[(&str, &str)] = &[
            (
                "gmail",
                "#ack\nFor you.\n\n---------- Forwarded message ---------\nFrom: Jane Doe <jane@home.test>\nDate: Mon, 30 Nov 2026 at 09:12\nSubject: Broken login\nTo: <sales@shop.test>\n\n\nI cannot log in.\n",
            ),
            (
                "apple",
                "Begin forwarded message:\n\nFrom: Jane Doe <jane@home.test>\nSubject: Broken login\nDate: 30 November 2026 at 09:12:00 CET\nTo: sales@shop.test\n\nI cannot log in.",
            ),
            (
                "outlook",
                "-----Original Message-----\nFrom: Jane Doe [mailto:jane@home.test]\nSent: Monday, November 30, 2026 9:12 AM\nTo: Sales\nSubject: Broken login\n\nI cannot log in.",
            ),
            (
                "thunderbird",
                "\n-------- Forwarded Message --------\nSubject: \tBroken login\nDate: \tMon, 30 Nov 2026 09:12:00 +0100\nFrom: \tJane Doe <jane@home.test>\nTo: \tsales@shop.test\n\nI cannot log in.\n",
            ),
            (
                "gmail fr",
                "---------- Message transféré ---------\nDe : Jane Doe <jane@home.test>\nDate: lun. 30 nov. 2026 à 09:12\nObjet : Broken login\nÀ : <sales@shop.test>\n\nI cannot log in.",
            ),
            (
                "quoted",
                "> ---------- Forwarded message ---------\n> From: Jane Doe <jane@home.test>\n> Subject: Broken login\n>\n> I cannot log in.",
            ),
        ];
        for (client, text) in table {
            let f = find(text).unwrap_or_else(|| panic!("{client}: no forward found"));
            assert_eq!(f.from, jane(), "{client}");
            assert_eq!(f.from_name.as_deref(), Some("Jane Doe"), "{client}");
            assert_eq!(f.subject.as_deref(), Some("Broken login"), "{client}");
            assert_eq!(f.text, "I cannot log in.", "{client}");
        }
        assert!(asks_for_ack(&find(table[0].1).unwrap().agent_text));
        assert!(!asks_for_ack(&find(table[1].1).unwrap().agent_text));
    }

    #[test]
    fn a_mail_that_only_mentions_forwarding_is_no_forward() {
        for text in [
            "I forwarded message 3 to you yesterday.",
            "---------- Forwarded message ---------\nThe header block is missing.",
            "-----Original Message-----\nFrom: nobody, no address\n\nhi",
        ] {
            assert_eq!(find(text), None, "{text}");
        }
    }
}
