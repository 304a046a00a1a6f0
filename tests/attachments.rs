//! The attachment policy over real files and real messages: a table of
//! files of each type (fixtures copied from permissive corpora, and files
//! built here: Office containers, programs, archives, bombs), the parts
//! mail-parser hands over for corpus messages (RFC 2231 and encoded-word
//! names, TNEF, nested messages), hostile input, and hostile names pushed
//! all the way to the file store.

use std::borrow::Cow;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guichet::adapters::file_store;
use guichet::rules::attachments::{
    Checked, FilePart, MAX_NAME_BYTES, Origin, Policy, Refusal, check, file_parts,
};
use mail_parser::MessageParser;
use zip::write::SimpleFileOptions;

// ---------------------------------------------------------------- files

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The shared corpus, or `None` (with a SKIPPED line) outside CI.
fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("GUICHET_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("corpus not found at {}", dir.display());
    }
    println!("SKIPPED: corpus not found at {}", dir.display());
    None
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

const CONTENT_TYPES: &[u8] = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#;
const RELS: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"/>"#;

fn docx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", RELS),
        (
            "word/document.xml",
            b"<w:document><w:body><w:p>Bonjour</w:p></w:body></w:document>",
        ),
    ])
}

fn xlsx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", RELS),
        ("xl/workbook.xml", b"<workbook><sheets/></workbook>"),
        ("xl/worksheets/sheet1.xml", b"<worksheet/>"),
    ])
}

/// An OLE2 compound file with these streams (and storages), like Word's
/// and Excel's 97–2003 formats.
fn ole(streams: &[&str], storages: &[&str], clsid: Option<uuid::Uuid>) -> Vec<u8> {
    let mut f = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    for s in storages {
        f.create_storage(s).unwrap();
    }
    for s in streams {
        f.create_stream(s).unwrap().write_all(&[7u8; 600]).unwrap();
    }
    if let Some(id) = clsid {
        f.set_storage_clsid("/", id).unwrap();
    }
    f.flush().unwrap();
    f.into_inner().into_inner()
}

/// A minimal PE image: DOS header pointing at a PE signature.
fn pe() -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..2].copy_from_slice(b"MZ");
    b[60..64].copy_from_slice(&0x80u32.to_le_bytes());
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
    b
}

fn elf() -> Vec<u8> {
    let mut b = b"\x7fELF\x02\x01\x01\0".to_vec();
    b.resize(256, 0);
    b
}

fn eicar() -> Vec<u8> {
    [
        &b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$"[..],
        b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    ]
    .concat()
}

/// Set the "encrypted" flag of every entry (local and central headers).
fn mark_encrypted(mut z: Vec<u8>) -> Vec<u8> {
    for i in 0..z.len().saturating_sub(10) {
        if z[i..i + 4] == *b"PK\x03\x04" {
            z[i + 6] |= 1;
        } else if z[i..i + 4] == *b"PK\x01\x02" {
            z[i + 8] |= 1;
        }
    }
    z
}

/// Make the central directory claim `size` uncompressed bytes per entry.
fn lie_about_size(mut z: Vec<u8>, size: u32) -> Vec<u8> {
    for i in 0..z.len().saturating_sub(30) {
        if z[i..i + 4] == *b"PK\x01\x02" {
            z[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
        }
    }
    z
}

fn many_entries(n: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..n {
        w.start_file(format!("f{i}.txt"), opts).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn zeros_zip(bytes: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("zeros.txt", SimpleFileOptions::default())
        .unwrap();
    let chunk = vec![b'0'; 1 << 20];
    for _ in 0..bytes >> 20 {
        w.write_all(&chunk).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn part(index: usize, name: Option<&str>, declared: &str, bytes: Vec<u8>) -> FilePart<'static> {
    FilePart {
        index,
        raw_name: name.map(str::to_string),
        declared_type: declared.to_string(),
        inline: false,
        bytes: Cow::Owned(bytes),
        malformed: false,
        content_id: None,
        origin: Origin::Mime,
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const DEFAULT: &[&str] = &["jpg", "jpeg", "png", "doc", "docx", "xls", "xlsx"];
const BROAD: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "tif", "tiff", "bmp", "webp", "pdf", "doc", "docx", "xls", "xlsx",
    "txt", "csv", "json", "log", "xml", "sql", "zip", "rar", "dat", "svg", "rtf",
];
const FIVE_MIB: u64 = 5 * 1024 * 1024;

// ---------------------------------------------------------------- policy table

#[test]
fn policy_table_over_real_files() {
    let rtf = b"{\\rtf1\\ansi Hello}".to_vec();
    let msi_clsid = uuid::Uuid::parse_str("000c1084-0000-0000-c000-000000000046").unwrap();
    let scripts_docx = zip_of(&[
        ("run.js", b"WScript.Shell"),
        ("payload.vbs", b"CreateObject"),
    ]);
    let macro_docx = zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("word/document.xml", b"<w:document/>"),
        ("word/vbaProject.bin", b"\xd0\xcf\x11\xe0"),
    ]);
    let plain_zip_as_docx = zip_of(&[("notes.txt", b"hello")]);
    let big_png = {
        let mut b = fixture("ruby-mail/test.png");
        b.resize(FIVE_MIB as usize + 1, 0);
        b
    };
    let latin1_csv = b"nom;ville\nRen\xe9;Z\xfcrich\n".to_vec();
    let mozambique =
        b"MZ,Mozambique,Maputo,33000000,Africa,southern,coastal,metical,MZN,pt\n".to_vec();
    let html = b"<!DOCTYPE html>\n<html><body><script>location='https://evil'</script>".to_vec();
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();

    // (label, name, declared type, bytes, allowed, expected code, detail in Debug)
    type Row = (
        &'static str,
        Option<&'static str>,
        &'static str,
        Vec<u8>,
        &'static [&'static str],
        &'static str,
        &'static str,
    );
    let rows: Vec<Row> = vec![
        // accepted: real files of each type
        (
            "jpeg",
            Some("photo.JPG"),
            "image/jpeg",
            fixture("ruby-mail/test.jpg"),
            DEFAULT,
            "accepted",
            "",
        ),
        (
            "png",
            Some("scan.png"),
            "image/png",
            fixture("ruby-mail/test.png"),
            DEFAULT,
            "accepted",
            "",
        ),
        (
            "gif",
            Some("a.gif"),
            "image/gif",
            fixture("ruby-mail/test.gif"),
            BROAD,
            "accepted",
            "",
        ),
        (
            "tiff",
            Some("a.tiff"),
            "image/tiff",
            fixture("ruby-mail/test.tiff"),
            BROAD,
            "accepted",
            "",
        ),
        (
            "bmp",
            Some("a.bmp"),
            "image/bmp",
            fixture("cpython/python.bmp"),
            BROAD,
            "accepted",
            "",
        ),
        (
            "webp",
            Some("a.webp"),
            "image/webp",
            fixture("cpython/python.webp"),
            BROAD,
            "accepted",
            "",
        ),
        (
            "pdf",
            Some("devis.pdf"),
            "application/pdf",
            fixture("ruby-mail/test.pdf"),
            BROAD,
            "accepted",
            "",
        ),
        (
            "zip of a pdf",
            Some("docs.zip"),
            "application/zip",
            fixture("ruby-mail/test.zip"),
            BROAD,
            "accepted",
            "",
        ),
        (
            "docx",
            Some("cv.docx"),
            "application/octet-stream",
            docx(),
            DEFAULT,
            "accepted",
            "",
        ),
        (
            "xlsx",
            Some("compta.xlsx"),
            "application/vnd.ms-excel",
            xlsx(),
            DEFAULT,
            "accepted",
            "",
        ),
        (
            "doc (OLE)",
            Some("lettre.doc"),
            "application/msword",
            ole(&["WordDocument", "1Table"], &[], None),
            DEFAULT,
            "accepted",
            "",
        ),
        (
            "xls (OLE)",
            Some("old.xls"),
            "application/vnd.ms-excel",
            ole(&["Workbook"], &[], None),
            DEFAULT,
            "accepted",
            "",
        ),
        (
            "doc that is RTF",
            Some("memo.doc"),
            "application/msword",
            rtf.clone(),
            DEFAULT,
            "accepted",
            "",
        ),
        (
            "rtf",
            Some("memo.rtf"),
            "application/rtf",
            rtf,
            BROAD,
            "accepted",
            "",
        ),
        (
            "utf-8 text",
            Some("notes.txt"),
            "text/plain",
            "Bonjour, ça marche pas\n".into(),
            BROAD,
            "accepted",
            "",
        ),
        (
            "latin-1 csv",
            Some("export.csv"),
            "text/csv",
            latin1_csv,
            BROAD,
            "accepted",
            "",
        ),
        (
            "csv starting MZ",
            Some("countries.csv"),
            "text/csv",
            mozambique,
            BROAD,
            "accepted",
            "",
        ),
        (
            "json",
            Some("config.json"),
            "application/json",
            b"{\"a\": [1, 2]}".to_vec(),
            BROAD,
            "accepted",
            "",
        ),
        (
            "log with colours",
            Some("app.log"),
            "text/plain",
            b"\x1b[31mERR\x1b[0m boom\n".to_vec(),
            BROAD,
            "accepted",
            "",
        ),
        (
            "xml",
            Some("feed.xml"),
            "text/xml",
            b"<?xml version=\"1.0\"?><feed/>".to_vec(),
            BROAD,
            "accepted",
            "",
        ),
        (
            "sql",
            Some("dump.sql"),
            "application/sql",
            b"SELECT 1;\n".to_vec(),
            BROAD,
            "accepted",
            "",
        ),
        (
            "EICAR is text: the antivirus refuses it",
            Some("eicar.txt"),
            "text/plain",
            eicar(),
            BROAD,
            "accepted",
            "",
        ),
        // refused
        (
            "exe renamed .jpg",
            Some("photo.jpg"),
            "image/jpeg",
            pe(),
            DEFAULT,
            "executable",
            "PE",
        ),
        (
            "ELF renamed .png",
            Some("chart.png"),
            "image/png",
            elf(),
            DEFAULT,
            "executable",
            "ELF",
        ),
        (
            "HTML renamed .txt",
            Some("readme.txt"),
            "text/plain",
            html.clone(),
            BROAD,
            "executable",
            "HTML",
        ),
        (
            "HTML renamed .doc",
            Some("export.doc"),
            "application/msword",
            html,
            DEFAULT,
            "executable",
            "HTML",
        ),
        (
            "docx that is a zip of scripts",
            Some("report.docx"),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            scripts_docx,
            DEFAULT,
            "archive_holds_executable",
            "run.js",
        ),
        (
            "docx with macros",
            Some("report.docx"),
            "application/octet-stream",
            macro_docx,
            DEFAULT,
            "executable",
            "Office macros",
        ),
        (
            "xls with macros",
            Some("tool.xls"),
            "application/vnd.ms-excel",
            ole(&["Workbook"], &["_VBA_PROJECT_CUR"], None),
            DEFAULT,
            "executable",
            "Office macros",
        ),
        (
            "msi renamed .doc",
            Some("setup.doc"),
            "application/msword",
            ole(&["x"], &[], Some(msi_clsid)),
            DEFAULT,
            "executable",
            "MSI",
        ),
        (
            "plain zip renamed .docx",
            Some("a.docx"),
            "application/octet-stream",
            plain_zip_as_docx,
            DEFAULT,
            "content_mismatch",
            "application/zip",
        ),
        (
            "xls that is a doc",
            Some("a.xls"),
            "application/vnd.ms-excel",
            ole(&["WordDocument"], &[], None),
            DEFAULT,
            "content_mismatch",
            "msword",
        ),
        (
            "invoice.pdf.exe",
            Some("invoice.pdf.exe"),
            "application/pdf",
            pe(),
            DEFAULT,
            "extension_not_allowed",
            "\"exe\"",
        ),
        (
            "exe allowed by the admin",
            Some("tool.exe"),
            "application/octet-stream",
            pe(),
            &["exe"],
            "executable",
            "PE",
        ),
        (
            "js allowed by the admin, text inside",
            Some("app.js"),
            "text/javascript",
            b"alert(1)".to_vec(),
            &["js"],
            "executable",
            ".js",
        ),
        (
            "oversize",
            Some("huge.png"),
            "image/png",
            big_png,
            DEFAULT,
            "too_large",
            "limit: 5242880",
        ),
        (
            "pdf renamed .jpg",
            Some("photo.jpg"),
            "image/jpeg",
            fixture("ruby-mail/test.pdf"),
            DEFAULT,
            "content_mismatch",
            "application/pdf",
        ),
        (
            "jpeg renamed .docx",
            Some("cv.docx"),
            "application/msword",
            fixture("ruby-mail/test.jpg"),
            DEFAULT,
            "content_mismatch",
            "image/jpeg",
        ),
        (
            "binary renamed .txt",
            Some("notes.txt"),
            "text/plain",
            random,
            BROAD,
            "content_mismatch",
            "txt",
        ),
        (
            "no extension",
            Some("README"),
            "text/plain",
            b"hello".to_vec(),
            BROAD,
            "no_extension",
            "",
        ),
        (
            "winmail.dat that does not decode",
            Some("winmail.dat"),
            "application/ms-tnef",
            b"\x78\x9f\x3e\x22\x00\x00".to_vec(),
            BROAD,
            "tnef",
            "",
        ),
        (
            "encrypted zip",
            Some("secret.zip"),
            "application/zip",
            mark_encrypted(zip_of(&[("a.pdf", b"%PDF-1.4")])),
            BROAD,
            "unreadable_archive",
            "",
        ),
        (
            "rar",
            Some("a.rar"),
            "application/vnd.rar",
            b"Rar!\x1a\x07\x01\x00\x00\x00\x00\x00".to_vec(),
            BROAD,
            "unreadable_archive",
            "",
        ),
        (
            "zip bomb: expands 1000x",
            Some("bomb.zip"),
            "application/zip",
            zeros_zip(12 << 20),
            BROAD,
            "archive_too_large",
            "",
        ),
        (
            "zip lying about sizes (4 GiB)",
            Some("lie.zip"),
            "application/zip",
            lie_about_size(zip_of(&[("a.txt", b"x")]), u32::MAX),
            BROAD,
            "archive_too_large",
            "",
        ),
        (
            "zip with 10,001 entries",
            Some("many.zip"),
            "application/zip",
            many_entries(10_001),
            BROAD,
            "archive_too_large",
            "",
        ),
        (
            "unknown extension, plain data",
            Some("part.stl"),
            "model/stl",
            b"solid cube\nendsolid\n".to_vec(),
            &["stl"],
            "accepted",
            "",
        ),
        (
            "unknown extension holding a PNG",
            Some("drawing.dwg"),
            "image/vnd.dwg",
            fixture("ruby-mail/test.png"),
            &["dwg"],
            "content_mismatch",
            "image/png",
        ),
        (
            "unknown extension holding HTML",
            Some("page.foo"),
            "application/x-foo",
            b"<html><script>x</script>".to_vec(),
            &["foo"],
            "executable",
            "HTML",
        ),
        (
            "zip holding an exe named .txt",
            Some("a.zip"),
            "application/zip",
            zip_of(&[("readme.txt", &pe())]),
            BROAD,
            "archive_holds_executable",
            "readme.txt",
        ),
    ];
    let mut failures = Vec::new();
    for (label, name, declared, bytes, allowed, want, detail) in rows {
        let allowed = strings(allowed);
        let policy = Policy {
            enabled: true,
            max_size_bytes: FIVE_MIB,
            allowed_extensions: &allowed,
        };
        let got = check(&policy, &part(1, name, declared, bytes));
        let code = got.refusal.as_ref().map_or("accepted", Refusal::code);
        let debug = format!("{:?}", got.refusal);
        if code != want || !debug.contains(detail) {
            failures.push(format!(
                "{label} ({name:?}): want {want} {detail:?}, got {code} {debug} sniffed {:?}",
                got.sniffed_type
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn disabled_refuses_every_file_first() {
    let allowed = strings(BROAD);
    let policy = Policy {
        enabled: false,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };
    for (name, bytes) in [("a.png", fixture("ruby-mail/test.png")), ("a.exe", pe())] {
        assert_eq!(
            check(&policy, &part(1, Some(name), "x/y", bytes)).refusal,
            Some(Refusal::Disabled),
            "{name}"
        );
    }
}

#[test]
fn sniffed_and_declared_types_are_reported() {
    let allowed = strings(DEFAULT);
    let policy = Policy {
        enabled: true,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };
    let got = check(
        &policy,
        &part(
            4,
            Some("photo.jpg"),
            "image/jpeg",
            fixture("ruby-mail/test.jpg"),
        ),
    );
    assert_eq!(
        got,
        Checked {
            filename: "photo.jpg".into(),
            extension: Some("jpg".into()),
            size: 2029,
            declared_type: "image/jpeg".into(),
            sniffed_type: Some("image/jpeg".into()),
            refusal: None,
            body_image: false,
            content_id: None,
        }
    );
    let got = check(
        &policy,
        &part(
            4,
            Some("x.doc"),
            "application/msword",
            ole(&["WordDocument"], &[], None),
        ),
    );
    assert_eq!(got.sniffed_type.as_deref(), Some("application/msword"));
}

// ---------------------------------------------------------------- messages

fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default().parse(raw).expect("parses")
}

/// A multipart/mixed message: a text body, then each part as given
/// (headers + blank line + body).
fn message(parts: &[String]) -> Vec<u8> {
    let mut m = String::from(
        "From: a@example.com\r\nTo: support@example.com\r\nSubject: files\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\n--BOUND\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello, see attached.\r\n",
    );
    for p in parts {
        m.push_str("--BOUND\r\n");
        m.push_str(p);
        m.push_str("\r\n");
    }
    m.push_str("--BOUND--\r\n");
    m.into_bytes()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    let s = base64::engine::general_purpose::STANDARD.encode(bytes);
    s.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn attachment(disposition_name: &str, ctype: &str, bytes: &[u8]) -> String {
    format!(
        "Content-Type: {ctype}\r\nContent-Disposition: attachment; {disposition_name}\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}",
        b64(bytes)
    )
}

#[test]
fn bodies_are_not_files_inline_images_are() {
    let png = fixture("ruby-mail/test.png");
    let raw = format!(
        "From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=R\r\n\r\n\
         --R\r\nContent-Type: multipart/alternative; boundary=A\r\n\r\n\
         --A\r\nContent-Type: text/plain\r\n\r\nplain body\r\n\
         --A\r\nContent-Type: text/html\r\n\r\n<p>html body <img src=\"cid:img1\"></p>\r\n--A--\r\n\
         --R\r\nContent-Type: image/png\r\nContent-ID: <img1>\r\nContent-Disposition: inline\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--R--\r\n",
        b64(&png)
    );
    let msg = parse(raw.as_bytes());
    let files = file_parts(&msg);
    assert_eq!(files.len(), 1, "{files:?}");
    let f = &files[0];
    assert!(f.inline && f.raw_name.is_none() && f.declared_type == "image/png");
    assert_eq!(&f.bytes[..], &png[..]);
    assert!(matches!(f.bytes, Cow::Borrowed(_)) || f.bytes.len() == png.len());
    let allowed = strings(DEFAULT);
    let policy = Policy {
        enabled: true,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };
    let got = check(&policy, f);
    assert_eq!(
        (got.filename.as_str(), got.refusal),
        ("attachment-1.png", None)
    );
}

#[test]
fn nested_messages_files_are_found() {
    let inner = String::from_utf8(message(&[attachment(
        "filename=inner.pdf",
        "application/pdf",
        &fixture("ruby-mail/test.pdf"),
    )]))
    .unwrap();
    let middle = String::from_utf8(message(&[
        format!("Content-Type: message/rfc822\r\n\r\n{inner}"),
        attachment(
            "filename=middle.png",
            "image/png",
            &fixture("ruby-mail/test.png"),
        ),
    ]))
    .unwrap();
    let raw = message(&[
        attachment(
            "filename=outer.jpg",
            "image/jpeg",
            &fixture("ruby-mail/test.jpg"),
        ),
        format!(
            "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=fwd.eml\r\n\r\n{middle}"
        ),
    ]);
    let msg = parse(&raw);
    let files = file_parts(&msg);
    let names: Vec<_> = files
        .iter()
        .map(|f| (f.index, f.raw_name.as_deref().unwrap_or("?"), f.bytes.len()))
        .collect();
    assert_eq!(
        names,
        vec![
            (1, "outer.jpg", 2029),
            (2, "inner.pdf", 11464),
            (3, "middle.png", 6958)
        ]
    );
}

/// Where mail-parser (and so Guichet) reads a corpus mail differently from
/// php-mime-mail-parser, and why that is acceptable.
const DIVERGENCES: &[(&str, &str)] = &[
    (
        "m0011",
        "the file opens with a line of spaces, so mail-parser finds no headers: one text body",
    ),
    (
        "m0012",
        "the file opens with a line of spaces, so mail-parser finds no headers: one text body",
    ),
    (
        "m0014",
        "the only part is an inline text/plain: mail-parser (and mail clients) show it as the body",
    ),
    (
        "m0016",
        "the only part is an inline text/plain: mail-parser (and mail clients) show it as the body",
    ),
];

#[test]
fn php_mime_mail_parser_expected_attachments() {
    let Some(corpus) = corpus() else { return };
    let dir = corpus.join("php-mime-mail-parser");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("EXPECTED_provideData.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in expected["cases"].as_array().unwrap() {
        let id = case["mail_id"].as_str().unwrap();
        let Ok(raw) = std::fs::read(dir.join("mails").join(id)) else {
            continue;
        };
        if let Some((_, why)) = DIVERGENCES.iter().find(|(d, _)| *d == id) {
            println!("{id}: not compared: {why}");
            continue;
        }
        let msg = parse(&raw);
        let got: Vec<(String, usize)> = file_parts(&msg)
            .iter()
            .map(|f| (f.raw_name.clone().unwrap_or_default(), f.bytes.len()))
            .collect();
        let want: Vec<(String, usize)> = case["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let name = a["filename"].as_str().unwrap();
                // php-mime-mail-parser invents "noname1" for nameless parts.
                let name = if name.starts_with("noname") { "" } else { name };
                (name.to_string(), a["size"].as_u64().unwrap() as usize)
            })
            .collect();
        if got != want {
            failures.push(format!("{id}: got {got:?}, want {want:?}"));
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} cases read");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn rfc2231_and_encoded_word_names_from_the_corpus() {
    let Some(corpus) = corpus() else { return };
    // (file, expected first name). The ruby-mail name is declared
    // iso-2022-jp but holds a byte (0x8A) that charset does not have: it
    // decodes with a replacement character, which is harmless.
    let cases: &[(&str, &str)] = &[
        (
            "ruby-mail/emails/attachment_emails/attachment_with_encoded_name.eml",
            "01 Quien Te Dij\u{FFFD}at. Pitbull.mp3",
        ),
        (
            "ruby-mail/emails/attachment_emails/attachment_with_base64_encoded_name.eml",
            "This is a test.pdf",
        ),
        (
            "ruby-mail/emails/attachment_emails/attachment_nonascii_filename.eml",
            "ciële.txt",
        ),
        // GPL (RT): read from the shared corpus, never copied.
        (
            "rt/emails/rfc2231-attachment-filename-continuations",
            "新しいテキスト ドキュメント.txt",
        ),
    ];
    let allowed = strings(BROAD);
    let policy = Policy {
        enabled: true,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };
    for (rel, want_first) in cases {
        let raw = std::fs::read(corpus.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let msg = parse(&raw);
        let files = file_parts(&msg);
        assert!(!files.is_empty(), "{rel}: no file");
        for f in &files {
            let raw_name = f.raw_name.as_deref().unwrap_or("");
            assert!(
                !raw_name.contains("=?") && !raw_name.contains("''"),
                "{rel}: undecoded {raw_name:?}"
            );
            let c = check(&policy, f);
            assert!(
                !c.filename.contains(['/', '\\', '\0']) && c.filename.len() <= MAX_NAME_BYTES,
                "{rel}: {c:?}"
            );
            println!(
                "{rel}: {raw_name:?} -> {:?} {:?}",
                c.filename,
                c.refusal.map(|r| r.code())
            );
        }
        if !want_first.is_empty() {
            assert_eq!(files[0].raw_name.as_deref(), Some(*want_first), "{rel}");
        }
    }
}

/// A mail carrying `bytes` as a `winmail.dat` part.
fn winmail_mail(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: a@example.test\r\nSubject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
--b\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\nContent-Disposition: attachment; filename=\"winmail.dat\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

#[test]
fn tnef_streams_give_their_files_to_the_gate_and_broken_ones_are_refused() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tnef");
    let allowed = strings(BROAD);
    let policy = Policy {
        enabled: true,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };
    // two-files.tnef: AUTHORS and README come out as files (no extension:
    // refused as such, not as TNEF); the winmail.dat itself is gone.
    let raw = winmail_mail(&std::fs::read(dir.join("two-files.tnef")).unwrap());
    let msg = parse(&raw);
    let files = file_parts(&msg);
    let names: Vec<_> = files.iter().map(|f| f.raw_name.clone().unwrap()).collect();
    assert_eq!(names, ["AUTHORS", "README"]);
    assert!(files.iter().all(|f| f.origin == Origin::Tnef));
    let verdicts: Vec<_> = files.iter().map(|f| check(&policy, f)).collect();
    assert!(
        verdicts
            .iter()
            .all(|c| c.refusal.as_ref().map(Refusal::code) == Some("no_extension")),
        "{verdicts:?}"
    );
    // MAPI_ATTACH_DATA_OBJ: the .doc, .pdf and .htm, then the RTF body.
    let raw = winmail_mail(&std::fs::read(dir.join("MAPI_ATTACH_DATA_OBJ.tnef")).unwrap());
    let msg = parse(&raw);
    let files = file_parts(&msg);
    let got: Vec<_> = files
        .iter()
        .map(|f| {
            (
                f.raw_name.clone().unwrap(),
                f.origin,
                check(&policy, f).refusal.map(|r| r.code()),
            )
        })
        .collect();
    assert_eq!(
        got[1],
        ("VIA_Nytt_1402.pdf".into(), Origin::Tnef, None),
        "{got:?}"
    );
    assert_eq!(got[3].0, "body.rtf");
    assert_eq!(got[3].1, Origin::TnefBody);
    // The images its HTML body shows by cid: are body images (quiet).
    let raw = winmail_mail(&std::fs::read(dir.join("panic.tnef")).unwrap());
    let msg = parse(&raw);
    let cids = guichet::rules::attachments::body_cids(&msg);
    let roles: Vec<_> = file_parts(&msg)
        .iter()
        .map(|f| guichet::rules::attachments::roles::role_of(f, &cids, false))
        .collect();
    use guichet::rules::attachments::roles::Role;
    assert_eq!(
        roles,
        [
            Role::BodyImage,
            Role::BodyImage,
            Role::BodyImage,
            Role::MessageBody
        ]
    );
    // The embedded messages of christmas.tnef are opened in turn.
    let raw = winmail_mail(&std::fs::read(dir.join("christmas.tnef")).unwrap());
    let msg = parse(&raw);
    let kittens = file_parts(&msg)
        .iter()
        .filter(|f| f.raw_name.as_deref() == Some("kitten-playing-with-a-christmas-tree.jpg"))
        .count();
    assert!(kittens >= 2, "the top one and the embedded message's");
    // The two whole Outlook messages of the corpus.
    for (eml, want) in [("ukr.eml", "body.html"), ("rich-text.eml", "body.rtf")] {
        let raw = std::fs::read(dir.join(eml)).unwrap();
        let msg = parse(&raw);
        let files = file_parts(&msg);
        assert!(
            files
                .iter()
                .all(|f| f.raw_name.as_deref() != Some("winmail.dat")),
            "{eml}: the winmail.dat is decoded"
        );
        assert!(
            files.iter().any(|f| f.raw_name.as_deref() == Some(want)),
            "{eml}: {:?}",
            files.iter().map(|f| &f.raw_name).collect::<Vec<_>>()
        );
    }
    // A stream that does not decode stays one file, refused with the reason.
    let whole = std::fs::read(dir.join("two-files.tnef")).unwrap();
    for (broken, why) in [
        (&whole[..whole.len() / 2], "cut short"),
        (&b"\x78\x9f\x3e\x22\x00\x00"[..], "holds no attribute"),
        (&b"not tnef at all"[..], "wrong signature"),
    ] {
        let raw = winmail_mail(broken);
        let msg = parse(&raw);
        let files = file_parts(&msg);
        assert_eq!(files.len(), 1);
        let c = check(&policy, &files[0]);
        assert_eq!(c.filename, "winmail.dat");
        let refusal = c.refusal.unwrap();
        assert_eq!(refusal.code(), "tnef");
        let told = refusal.explain(guichet::settings::Language::En);
        assert!(
            told.contains(why) && told.contains("cannot be read"),
            "{told}"
        );
    }
}

#[test]
fn uuencoded_files_in_text_bodies_and_parts_are_decoded_for_the_gate() {
    let allowed = strings(BROAD);
    let policy = Policy {
        enabled: true,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };
    // Lotus Notes pasting a JPEG into the body (RT's corpus).
    if let Some(corpus) = corpus() {
        let raw = std::fs::read(corpus.join("rt/emails/notes-uuencoded")).unwrap();
        let msg = parse(&raw);
        let files = file_parts(&msg);
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].raw_name.as_deref(), Some("Naz_Head.jpg"));
        assert_eq!(files[0].origin, Origin::Uuencoded);
        assert!(files[0].bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
        let c = check(&policy, &files[0]);
        assert_eq!(c.refusal, None, "{c:?}");
    }
    // An x-uuencode part: its bytes are the file, not the encoded text.
    let raw = b"From: a@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream; name=cat.txt\r\nContent-Disposition: attachment; filename=cat.txt\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 cat.txt\r\n#0V%T\r\n`\r\nend\r\n--b--\r\n";
    let msg = parse(raw);
    let files = file_parts(&msg);
    assert_eq!(files.len(), 1);
    assert_eq!(&files[0].bytes[..], b"Cat");
    assert_eq!(check(&policy, &files[0]).refusal, None);
    // A malformed block is refused as undecodable, with its name.
    let raw = b"From: a@example.test\r\nContent-Type: text/plain\r\n\r\nHello\r\n\r\nbegin 644 a.txt\r\n#0V%T\r\n#0v%t\r\nend\r\n";
    let msg = parse(raw);
    let files = file_parts(&msg);
    assert_eq!(files.len(), 1);
    let c = check(&policy, &files[0]);
    assert_eq!(
        (c.filename.as_str(), c.refusal),
        ("a.txt", Some(Refusal::Undecodable))
    );
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_input_gets_a_clear_verdict_each() {
    let allowed = strings(BROAD);
    let policy = Policy {
        enabled: true,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };

    // Malformed base64.
    let raw = message(&[
        "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=broken.pdf\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nJVBERi0x!!!!not*base64***\r\nQUJD"
            .to_string(),
    ]);
    let msg = parse(&raw);
    let files = file_parts(&msg);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        check(&policy, &files[0]).refusal,
        Some(Refusal::Undecodable)
    );

    // Claims 1 KB (Content-Disposition size=), holds 40 MB.
    let started = Instant::now();
    let forty = vec![b'A'; 40 * 1024 * 1024];
    let raw = message(&[format!(
        "Content-Type: image/png\r\nContent-Disposition: attachment; filename=small.png; size=1024\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}",
        b64(&forty)
    )]);
    let msg = parse(&raw);
    let files = file_parts(&msg);
    let got = check(&policy, &files[0]);
    assert_eq!(
        got.refusal,
        Some(Refusal::TooLarge {
            size: 40 * 1024 * 1024,
            limit: FIVE_MIB
        })
    );
    assert_eq!(got.size, 40 * 1024 * 1024);
    drop(files);
    drop(msg);
    println!("40 MB part: {:?}", started.elapsed());

    // A file name in an unknown charset (RFC 2231) and in an encoded word
    // hiding an RTL override: decoded somehow, sanitised, judged.
    let raw = message(&[
        attachment(
            "filename*=x-unknown-charset''%E9t%E9.pdf",
            "application/pdf",
            &fixture("ruby-mail/test.pdf"),
        ),
        attachment(
            "filename=\"=?UTF-8?B?cGhvdG/igK5ncGouZXhl?=\"",
            "image/jpeg",
            &pe(),
        ),
    ]);
    let msg = parse(&raw);
    let checked: Vec<Checked> = file_parts(&msg).iter().map(|f| check(&policy, f)).collect();
    assert_eq!(checked.len(), 2, "{checked:?}");
    assert!(checked[0].filename.ends_with(".pdf"), "{checked:?}");
    assert_eq!(checked[0].refusal, None);
    assert_eq!(checked[1].filename, "photogpj.exe", "{checked:?}");
    assert_eq!(checked[1].extension.as_deref(), Some("exe"));
    assert!(checked[1].refusal.is_some());
}

#[test]
fn ten_thousand_tiny_parts() {
    let parts: Vec<String> = (0..10_000)
        .map(|i| format!("Content-Type: text/plain\r\nContent-Disposition: attachment; filename=f{i}.txt\r\n\r\nx{i}"))
        .collect();
    let raw = message(&parts);
    let started = Instant::now();
    let msg = parse(&raw);
    let files = file_parts(&msg);
    let allowed = strings(BROAD);
    let policy = Policy {
        enabled: true,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };
    let checked: Vec<Checked> = files.iter().map(|f| check(&policy, f)).collect();
    let elapsed = started.elapsed();
    assert_eq!(checked.len(), 10_000);
    assert!(
        checked.iter().all(|c| c.refusal.is_none()),
        "{:?}",
        checked.iter().find(|c| c.refusal.is_some())
    );
    assert_eq!(checked[9_999].filename, "f9999.txt");
    // Borrowed, not copied: memory is the message's, not 10,000 buffers.
    assert!(files.iter().all(|f| matches!(f.bytes, Cow::Borrowed(_))));
    println!("10,000 parts parsed and checked in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(120), "{elapsed:?}");
}

// ---------------------------------------------------------------- storage

#[test]
fn hostile_names_never_reach_the_disk() {
    let root = tempfile::tempdir().unwrap();
    let store_dir = root.path().join("attachments");
    let long = format!("{}.png", "é".repeat(250)); // 500+ bytes
    let hostile: Vec<String> = vec![
        "filename=\"../../etc/passwd.png\"".into(),
        "filename=\"/etc/cron.d/x.png\"".into(),
        "filename=\"C:\\\\Windows\\\\System32\\\\x.png\"".into(),
        "filename*=UTF-8''..%2F..%2F..%2Ftmp%2Fevil.png".into(),
        "filename*=UTF-8''nul%00byte.png".into(),
        "filename=\"=?UTF-8?B?Li4vLi4vcm9vdC8uc3NoL2F1dGhvcml6ZWRfa2V5cy5wbmc=?=\"".into(),
        "filename=\"photo\u{202E}gnp.png\"".into(),
        format!("filename=\"{long}\""),
        "filename*0*=UTF-8''..%2F..%2F; filename*1=\"etc%2Fshadow.png\"".into(),
    ];
    let png = fixture("ruby-mail/test.png");
    let parts: Vec<String> = hostile
        .iter()
        .map(|h| attachment(h, "image/png", &png))
        .collect();
    let raw = message(&parts);
    let msg = parse(&raw);
    let files = file_parts(&msg);
    assert_eq!(files.len(), hostile.len());
    let allowed = strings(DEFAULT);
    let policy = Policy {
        enabled: true,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };
    let mut stored = Vec::new();
    for f in &files {
        let c = check(&policy, f);
        assert!(
            !c.filename.contains(['/', '\\', '\0', '\u{202E}'])
                && !c.filename.starts_with('.')
                && c.filename.len() <= MAX_NAME_BYTES,
            "{:?} -> {:?}",
            f.raw_name,
            c.filename
        );
        if c.refusal.is_none() {
            stored.push(file_store::store(&store_dir, &f.bytes).unwrap());
        }
        println!(
            "{:?} -> {:?} {:?}",
            f.raw_name,
            c.filename,
            c.refusal.map(|r| r.code())
        );
    }
    assert!(!stored.is_empty());
    // The same bytes: one file, whatever the names said.
    assert!(stored.windows(2).all(|w| w[0] == w[1]));
    let mut on_disk = Vec::new();
    walk(root.path(), &mut on_disk);
    let want = store_dir.join(&stored[0].relative_path);
    assert_eq!(on_disk, vec![want.clone()], "files under the temp root");
    assert_eq!(std::fs::read(&want).unwrap(), png);
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn file_store_is_content_addressed_atomic_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let a = file_store::store(dir.path(), b"hello").unwrap();
    assert_eq!(
        a.sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(
        a.relative_path,
        Path::new("2c/f2/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    );
    assert_eq!(
        file_store::path_of(dir.path(), &a.sha256).unwrap(),
        dir.path().join(&a.relative_path)
    );
    assert_eq!(
        std::fs::read(dir.path().join(&a.relative_path)).unwrap(),
        b"hello"
    );
    // Again: same answer, still one file, no temp file left behind.
    assert_eq!(file_store::store(dir.path(), b"hello").unwrap(), a);
    let mut files = Vec::new();
    walk(dir.path(), &mut files);
    assert_eq!(files.len(), 1, "{files:?}");
    // A truncated file under the final name is rewritten.
    std::fs::write(dir.path().join(&a.relative_path), b"hel").unwrap();
    file_store::store(dir.path(), b"hello").unwrap();
    assert_eq!(
        std::fs::read(dir.path().join(&a.relative_path)).unwrap(),
        b"hello"
    );
    // Empty content is a file too.
    let e = file_store::store(dir.path(), b"").unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join(&e.relative_path))
            .unwrap()
            .len(),
        0
    );
    // Remove, twice.
    assert!(file_store::remove(dir.path(), &a.sha256).unwrap());
    assert!(!file_store::remove(dir.path(), &a.sha256).unwrap());
    // Hashes from a database row are checked before they become paths.
    for bad in [
        "../../etc/passwd",
        "",
        "zz",
        &"g".repeat(64),
        "/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982",
    ] {
        assert!(file_store::path_of(dir.path(), bad).is_err(), "{bad:?}");
        assert!(file_store::remove(dir.path(), bad).is_err(), "{bad:?}");
    }
}

#[test]
fn concurrent_stores_of_the_same_file_agree() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| file_store::store(dir.path(), &bytes).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    let mut files = Vec::new();
    walk(dir.path(), &mut files);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), bytes);
}

#[test]
fn every_corpus_file_gets_a_verdict() {
    let Some(corpus) = corpus() else { return };
    let index = std::fs::read_to_string(corpus.join("index.tsv")).unwrap();
    let allowed = strings(BROAD);
    let policy = Policy {
        enabled: true,
        max_size_bytes: FIVE_MIB,
        allowed_extensions: &allowed,
    };
    let (mut messages, mut files) = (0, 0);
    let mut by_code = std::collections::BTreeMap::<&str, usize>::new();
    let started = Instant::now();
    for line in index.lines().skip(1) {
        let rel = line.split('\t').next().unwrap();
        let Ok(raw) = std::fs::read(corpus.join(rel)) else {
            continue;
        };
        let Some(msg) = MessageParser::default().parse(&raw) else {
            continue;
        };
        messages += 1;
        for f in file_parts(&msg) {
            let c = check(&policy, &f);
            assert!(
                !c.filename.is_empty() && !c.filename.contains(['/', '\\', '\0']),
                "{rel}: {c:?}"
            );
            *by_code
                .entry(c.refusal.as_ref().map_or("accepted", Refusal::code))
                .or_default() += 1;
            if std::env::var_os("SHOW_VERDICTS").is_some() {
                println!(
                    "{rel}\t{}\t{}\t{:?}\t{:?}",
                    c.filename, c.declared_type, c.sniffed_type, c.refusal
                );
            }
            files += 1;
        }
    }
    println!(
        "{messages} messages, {files} files in {:?}: {by_code:?}",
        started.elapsed()
    );
    assert!(
        messages > 1000 && files > 300,
        "{messages} messages, {files} files"
    );
}

/// Issue 19 over the corpus: no signature or encryption part of the real
/// S/MIME and PGP/MIME mails of Request Tracker (GPL-2.0, read from
/// ../shared/corpus) is taken for a file, and every image the HTML body
/// of a corpus mail shows by `cid:` is taken for a body image.
#[test]
fn corpus_signatures_are_no_files_and_cid_images_are_body_images() {
    use guichet::rules::attachments::roles::{Role, role_of};
    use guichet::rules::attachments::{body_cids, file_parts, is_encrypted};
    let Some(root) = corpus() else {
        eprintln!("SKIPPED: ../shared/corpus is absent");
        return;
    };
    let (mut signed, mut encrypted, mut body_images, mut mails) = (0, 0, 0, 0);
    let mut walk = vec![root.clone()];
    while let Some(dir) = walk.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk.push(path);
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "eml" | "txt" | "box" | "") {
                continue;
            }
            let raw = std::fs::read(&path).unwrap();
            let Some(msg) = MessageParser::default().parse(&raw) else {
                continue;
            };
            mails += 1;
            let cids = body_cids(&msg);
            let enc = is_encrypted(&msg);
            for part in file_parts(&msg) {
                let role = role_of(&part, &cids, enc);
                let ty = part.declared_type.as_str();
                if ty.ends_with("pkcs7-signature") || ty == "application/pgp-signature" {
                    assert!(
                        matches!(role, Role::Signature(_)),
                        "{}: {ty} taken for {role:?}",
                        path.display()
                    );
                    signed += 1;
                }
                if ty == "application/pgp-encrypted" || ty.ends_with("pkcs7-mime") {
                    assert!(
                        !matches!(role, Role::File),
                        "{}: {ty} taken for a file",
                        path.display()
                    );
                    encrypted += 1;
                }
                let shown = part.content_id.as_ref().is_some_and(|c| cids.contains(c));
                if shown && ty.starts_with("image/") {
                    assert!(
                        matches!(role, Role::BodyImage | Role::TinyImage),
                        "{}: a cid: image taken for {role:?}",
                        path.display()
                    );
                    body_images += 1;
                }
            }
        }
    }
    eprintln!(
        "{mails} corpus mails: {signed} signatures, {encrypted} encryption parts, {body_images} body images"
    );
    assert!(
        signed >= 10 && encrypted >= 5 && body_images >= 5,
        "{signed} {encrypted} {body_images}"
    );
}
