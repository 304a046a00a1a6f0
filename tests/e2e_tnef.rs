//! winmail.dat (TNEF) and uuencoded files end to end (issue 16), against
//! the real Dovecot, Postfix and clamd of the rig: the files inside are
//! gated like any attachment (a PDF reaches the agents' copy and the file
//! store, an .exe is refused and the customer told); a winmail.dat that
//! does not decode is refused as unreadable and the raw mail is kept.

mod harness;
mod support;

use std::time::Duration;

use base64::Engine;
use harness::{Desk, body_text};
use support::{deliver_lmtp, fresh_user, rig, wait_for_messages};

const WAIT: Duration = Duration::from_secs(20);

fn pe_executable() -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[0] = b'M';
    b[1] = b'Z';
    b[0x3c] = 0x80;
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b
}

/// A small PDF with the binary comment line real ones have.
fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

/// One TNEF attribute: level, tag, length, data, checksum.
fn attribute(level: u8, tag: u32, data: &[u8]) -> Vec<u8> {
    let sum = data.iter().fold(0u16, |s, &b| s.wrapping_add(u16::from(b)));
    let mut out = vec![level];
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// A winmail.dat as Outlook writes one: each file with an 8.3 title and
/// its long name (Unicode) in the MAPI properties.
fn winmail(files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut out = vec![0x78, 0x9F, 0x3E, 0x22, 0x01, 0x00];
    out.extend(attribute(1, 0x0008_9006, &0x0001_0000u32.to_le_bytes()));
    out.extend(attribute(
        1,
        0x0006_9007,
        &[1252u32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
    ));
    for (short, long, data) in files {
        out.extend(attribute(2, 0x0006_9002, &[0u8; 14]));
        out.extend(attribute(
            2,
            0x0001_8010,
            &[short.as_bytes(), b"\0"].concat(),
        ));
        out.extend(attribute(2, 0x0006_800F, data));
        // PR_ATTACH_LONG_FILENAME, PT_UNICODE
        let name: Vec<u8> = long
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut props = 1u32.to_le_bytes().to_vec();
        props.extend_from_slice(&0x001Fu16.to_le_bytes());
        props.extend_from_slice(&0x3707u16.to_le_bytes());
        props.extend_from_slice(&1u32.to_le_bytes());
        props.extend_from_slice(&(name.len() as u32).to_le_bytes());
        props.extend_from_slice(&name);
        props.resize(props.len().div_ceil(4) * 4, 0);
        out.extend(attribute(2, 0x0006_9005, &props));
    }
    out
}

fn b64_lines(bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    b64.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn outlook_mail(desk: &Desk, customer: &str, tag: &str, winmail_dat: &[u8]) -> String {
    format!(
        "From: Ann <{customer}>\r\nTo: {}\r\nSubject: Outlook files {tag}\r\nMessage-ID: <{tag}-{}@example.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nPlease see the attached files.\r\n\
--b\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\nContent-Disposition: attachment; filename=\"winmail.dat\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        desk.support,
        support::unique_token(),
        b64_lines(winmail_dat)
    )
}

fn desk_with_clamd() -> Desk {
    let r = rig();
    Desk::with(
        "",
        "allowed_extensions = \"pdf,txt,png\"",
        &format!(
            "[antivirus]\nclamd = \"tcp://{}:{}\"\n",
            r.clamd_host, r.clamd_port
        ),
    )
}

fn attachment_names(raw: &[u8]) -> Vec<String> {
    mail_parser::MessageParser::default()
        .parse(raw)
        .unwrap()
        .attachments()
        .filter_map(|a| mail_parser::MimeHeaders::attachment_name(a).map(str::to_string))
        .collect()
}

fn stored_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(stored_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_winmail_dat_gives_its_pdf_to_the_agent_and_its_exe_is_refused() {
    let desk = desk_with_clamd();
    let customer = fresh_user("customer");
    let dat = winmail(&[
        ("MANUAL~1.PDF", "Manuel d'utilisation é.pdf", &pdf()),
        ("SETUP~1.EXE", "setup.exe", &pe_executable()),
    ]);
    let raw = outlook_mail(&desk, &customer, "tnef", &dat);
    deliver_lmtp(&desk.support, raw.as_bytes()).await;
    let out = desk.run_once(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1);
    let t = desk.ticket(tickets[0]["ticket_id"].as_i64().unwrap());
    let files = t["messages"][0]["attachments"].as_array().unwrap().clone();
    let names: Vec<&str> = files
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Manuel d'utilisation é.pdf", "setup.exe"],
        "the long Unicode names, the winmail.dat itself gone: {files:#?}"
    );
    assert_eq!(files[0]["verdict"], "accepted", "{:#}", files[0]);
    assert_eq!(files[0]["sniffed_type"], "application/pdf");
    assert_eq!(files[0]["size"], pdf().len());
    assert_eq!(files[1]["verdict"], "refused", "{:#}", files[1]);
    assert_eq!(files[1]["reason_code"], "extension_not_allowed");
    let sha = files[0]["sha256"].as_str().unwrap().to_string();
    assert!(
        stored_files(&desk.dir.path().join("files"))
            .iter()
            .any(|p| p.ends_with(&sha)),
        "the PDF is in the file store"
    );

    // the customer is told of the .exe, as for a plain attachment
    let mail = wait_for_messages(&customer, 1, WAIT).await;
    let refusal = mail
        .iter()
        .map(|m| body_text(m))
        .find(|b| b.contains("could not accept"))
        .expect("a refusal in the acknowledgement");
    assert!(refusal.contains("setup.exe"), "{refusal}");
    assert!(!refusal.contains("Manuel"), "{refusal}");
    assert!(!refusal.contains("winmail.dat"), "{refusal}");

    // the agents' copy carries the PDF, byte for byte, and names the .exe
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    let parsed = mail_parser::MessageParser::default()
        .parse(&copy[0])
        .unwrap();
    let carried: Vec<(String, Vec<u8>)> = parsed
        .attachments()
        .filter_map(|a| {
            Some((
                mail_parser::MimeHeaders::attachment_name(a)?.to_string(),
                a.contents().to_vec(),
            ))
        })
        .collect();
    assert_eq!(
        carried,
        [("Manuel d'utilisation é.pdf".to_string(), pdf())],
        "{:?}",
        attachment_names(&copy[0])
    );
    assert!(body_text(&copy[0]).contains("setup.exe"));
}

#[tokio::test]
async fn a_uuencoded_file_in_the_text_is_gated_and_leaves_the_text() {
    let desk = desk_with_clamd();
    let customer = fresh_user("customer");
    let encode = |name: &str, data: &[u8]| {
        let mut s = format!("begin 644 {name}\r\n");
        for chunk in data.chunks(45) {
            s.push((b' ' + chunk.len() as u8) as char);
            for three in chunk.chunks(3) {
                let b = [
                    three[0],
                    *three.get(1).unwrap_or(&0),
                    *three.get(2).unwrap_or(&0),
                ];
                for v in [
                    b[0] >> 2,
                    (b[0] << 4 | b[1] >> 4) & 63,
                    (b[1] << 2 | b[2] >> 6) & 63,
                    b[2] & 63,
                ] {
                    s.push(if v == 0 { '`' } else { (b' ' + v) as char });
                }
            }
            s.push_str("\r\n");
        }
        s + "`\r\nend\r\n"
    };
    let raw = format!(
        "From: Ann <{customer}>\r\nTo: {}\r\nSubject: Old client\r\nMessage-ID: <uu-{}@example.test>\r\nContent-Type: text/plain\r\n\r\n\
Here is the manual and the tool.\r\n\r\n{}\r\n{}\r\nAnn\r\n",
        desk.support,
        support::unique_token(),
        encode("manual.pdf", &pdf()),
        encode("tool.exe", &pe_executable()),
    );
    deliver_lmtp(&desk.support, raw.as_bytes()).await;
    desk.run_once(None);

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1);
    let t = desk.ticket(tickets[0]["ticket_id"].as_i64().unwrap());
    let m = &t["messages"][0];
    let text = m["text"].as_str().unwrap();
    assert!(
        text.contains("Here is the manual") && text.contains("Ann"),
        "{text}"
    );
    assert!(
        !text.contains("begin 644") && !text.contains("end\n"),
        "{text}"
    );
    let files = m["attachments"].as_array().unwrap();
    assert_eq!(files[0]["filename"], "manual.pdf");
    assert_eq!(files[0]["verdict"], "accepted", "{:#}", files[0]);
    assert_eq!(files[0]["size"], pdf().len());
    assert_eq!(files[1]["filename"], "tool.exe");
    assert_eq!(files[1]["verdict"], "refused");

    let mail = wait_for_messages(&customer, 1, WAIT).await;
    let told = mail
        .iter()
        .map(|m| body_text(m))
        .find(|b| b.contains("could not accept"))
        .expect("a refusal");
    assert!(
        told.contains("tool.exe") && !told.contains("manual.pdf"),
        "{told}"
    );
    let copy = wait_for_messages(&desk.agent, 1, WAIT).await;
    assert_eq!(attachment_names(&copy[0]), ["manual.pdf"]);
    assert!(!body_text(&copy[0]).contains("begin 644"));
}

#[tokio::test]
async fn a_broken_winmail_dat_is_refused_as_unreadable_and_the_raw_mail_kept() {
    let desk = desk_with_clamd();
    let customer = fresh_user("customer");
    let whole = winmail(&[("MANUAL~1.PDF", "manual.pdf", &pdf())]);
    let broken = &whole[..whole.len() - 40];
    let raw = outlook_mail(&desk, &customer, "broken", broken);
    deliver_lmtp(&desk.support, raw.as_bytes()).await;
    desk.run_once(None);

    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 1, "the mail still opens its ticket");
    let t = desk.ticket(tickets[0]["ticket_id"].as_i64().unwrap());
    let files = t["messages"][0]["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{files:#?}");
    assert_eq!(files[0]["filename"], "winmail.dat");
    assert_eq!(files[0]["verdict"], "refused");
    assert_eq!(files[0]["reason_code"], "tnef");
    let reason = files[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cut short"), "{reason}");

    let mail = wait_for_messages(&customer, 1, WAIT).await;
    let told = mail
        .iter()
        .map(|m| body_text(m))
        .find(|b| b.contains("could not accept"))
        .expect("a refusal");
    assert!(
        told.contains("winmail.dat") && told.contains("cannot be read"),
        "{told}"
    );

    // the raw mail is kept, byte for byte
    let url = format!("sqlite://{}", desk.dir.path().join("guichet.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let raws: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT COALESCE(b.bytes, r.raw) FROM raw_messages r LEFT JOIN raw_message_blobs b ON b.id = r.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let tnef_b64 = b64_lines(broken);
    assert!(
        raws.iter().any(|r| {
            let r = String::from_utf8_lossy(r);
            r.contains(&tnef_b64) || r.contains(&tnef_b64.replace("\r\n", "\n"))
        }),
        "the raw mail with its winmail.dat is stored"
    );
}
