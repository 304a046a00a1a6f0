use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/tnef/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The names a stream gives, as MimeKit's lists write them: the files,
/// then the bodies.
fn listed(t: &Tnef) -> Vec<String> {
    t.files
        .iter()
        .map(|f| f.name.clone().unwrap_or_else(|| "(no name)".into()))
        .chain(t.bodies.iter().map(|b| b.file_name().to_string()))
        .collect()
}

/// Every stream: its files (name, size) and bodies, in order. Checked
/// against MimeKit's `X.list` below (which MimeKit's own test reads as
/// "each of these names is found"; its duplicates are MimeKit adding an
/// embedded message twice) and written out in full here.
/// (stream, its files (name, size), its bodies)
type Expected = (
    &'static str,
    &'static [(&'static str, usize)],
    &'static [&'static str],
);
const EXPECTED: &[Expected] = &[
    (
        "MAPI_ATTACH_DATA_OBJ",
        &[
            ("VIA_Nytt_1402.doc", 61952),
            ("VIA_Nytt_1402.pdf", 213685),
            ("VIA_Nytt_14021.htm", 68919),
        ],
        &["body.rtf"],
    ),
    (
        "MAPI_OBJECT",
        &[("Untitled_Attachment", 628224)],
        &["body.rtf"],
    ),
    (
        "attachments",
        &[("zappa_av1.jpg", 2937), ("bookmark.htm", 85805)],
        &["body.rtf"],
    ),
    ("body", &[], &["body.html"]),
    (
        "christmas",
        &[
            ("kitten-playing-with-a-christmas-tree.jpg", 375081),
            ("Untitled Attachment", 6508),
            ("Untitled Attachment", 385301),
        ],
        &["body.rtf"],
    ),
    (
        "data-before-name",
        &[("AUTOEXEC.BAT", 0), ("CONFIG.SYS", 0), ("boot.ini", 289)],
        &["body.rtf"],
    ),
    ("garbage-at-end", &[], &[]),
    (
        "long-filename",
        &[("allproductsmar2000.dat", 279)],
        &["body.rtf"],
    ),
    (
        "missing-filenames",
        &[
            ("generpts.src", 61210),
            ("TechlibDEC99.doc", 33792),
            ("TechlibDEC99-JAN00.doc", 34304),
            ("TechlibNOV99.doc", 33792),
        ],
        &["body.rtf"],
    ),
    ("multi-name-property", &[], &[]),
    (
        "multi-value-attribute",
        &[("208225__5_seconds__Voice_Mail.mp3", 10656)],
        &["body.rtf"],
    ),
    ("one-file", &[("AUTHORS", 244)], &[]),
    (
        "panic",
        &[
            ("image001.jpg", 11250),
            ("image002.jpg", 9583),
            ("image003.png", 7147),
        ],
        &["body.html"],
    ),
    ("rtf", &[], &["body.rtf"]),
    ("triples", &[], &["body.txt", "body.rtf"]),
    ("two-files", &[("AUTHORS", 244), ("README", 893)], &[]),
    (
        "unicode-mapi-attr-name",
        &[
            ("spaconsole2.cfg", 8387),
            ("image001.png", 3815),
            ("image002.png", 3573),
            ("image003.png", 3792),
        ],
        &["body.html"],
    ),
    (
        "unicode-mapi-attr",
        &[("example.dat", 1024)],
        &["body.html"],
    ),
    (
        "winmail",
        &[
            ("Untitled Attachment", 29184),
            ("Untitled Attachment", 68608),
        ],
        &["body.rtf"],
    ),
];

#[test]
fn every_mimekit_stream_gives_its_expected_file_list() {
    let dir = format!("{}/tests/fixtures/tnef", env!("CARGO_MANIFEST_DIR"));
    let mut streams: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().to_string();
            n.strip_suffix(".tnef").map(str::to_string)
        })
        .collect();
    streams.sort();
    assert_eq!(streams.len(), 19);
    let mut table: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    table.sort();
    assert_eq!(streams, table, "every stream is in the table");
    for (stream, files, bodies) in EXPECTED {
        let t =
            decode(&fixture(&format!("{stream}.tnef"))).unwrap_or_else(|e| panic!("{stream}: {e}"));
        let got: Vec<(String, usize)> = t
            .files
            .iter()
            .map(|f| (f.name.clone().unwrap_or_default(), f.bytes.len()))
            .collect();
        let want: Vec<(String, usize)> = files.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        assert_eq!(got, want, "{stream}: files");
        let got_bodies: Vec<&str> = t.bodies.iter().map(Body::file_name).collect();
        assert_eq!(&got_bodies, bodies, "{stream}: bodies");
        // MimeKit's list: each name it gives is ours too.
        let list = String::from_utf8(fixture(&format!("{stream}.list"))).unwrap();
        let ours = listed(&t);
        for name in list.lines().filter(|l| !l.is_empty()) {
            assert!(
                ours.iter().any(|o| o == name),
                "{stream}: {name} missing from {ours:?}"
            );
        }
    }
}

#[test]
fn file_contents_types_and_names_come_out_whole() {
    let t = decode(&fixture("one-file.tnef")).unwrap();
    let authors = &t.files[0];
    assert_eq!(
        authors.mime_type.as_deref(),
        Some("application/octet-stream")
    );
    assert!(String::from_utf8_lossy(&authors.bytes).contains("Authors of tnef"));
    let t = decode(&fixture("MAPI_ATTACH_DATA_OBJ.tnef")).unwrap();
    assert!(t.files[1].bytes.starts_with(b"%PDF-1.3"));
    assert!(t.files[1].bytes.ends_with(b"%%EOF\r"), "the PDF is whole");
    // An OLE object (PT_OBJECT): the 16-byte IID is not part of the file.
    assert!(t.files[0].bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]));
    let t = decode(&fixture("panic.tnef")).unwrap();
    assert_eq!(t.files[2].mime_type.as_deref(), Some("image/png"));
    assert!(t.files[2].bytes.starts_with(b"\x89PNG"));
    assert!(
        t.notes.iter().any(|n| n.contains("trailing junk")),
        "{:?}",
        t.notes
    );
    // A long name from the MAPI properties beats the 8.3 title.
    let t = decode(&fixture("long-filename.tnef")).unwrap();
    assert_eq!(t.files[0].name.as_deref(), Some("allproductsmar2000.dat"));
}

#[test]
fn embedded_messages_are_handed_over_whole_and_decode_in_turn() {
    let t = decode(&fixture("christmas.tnef")).unwrap();
    let flags: Vec<bool> = t.files.iter().map(|f| f.embedded_message).collect();
    assert_eq!(flags, [false, true, true]);
    let inner = decode(&t.files[2].bytes).unwrap();
    assert_eq!(
        inner
            .files
            .iter()
            .map(|f| f.name.as_deref())
            .collect::<Vec<_>>(),
        [Some("kitten-playing-with-a-christmas-tree.jpg")]
    );
}

#[test]
fn bodies_are_exposed_and_rtf_is_decompressed_to_text() {
    let t = decode(&fixture("triples.tnef")).unwrap();
    assert_eq!(t.text().as_deref(), Some("Sample description"));
    let t = decode(&fixture("long-filename.tnef")).unwrap();
    let rtf = &t.bodies[0];
    assert_eq!(rtf.kind, BodyKind::Rtf);
    assert!(
        rtf.bytes.starts_with(b"{\\rtf1"),
        "{:?}",
        String::from_utf8_lossy(&rtf.bytes[..20])
    );
    let text = t.text().unwrap();
    assert!(
        text.starts_with("I've attached a temp. license for QARun 4.7."),
        "{text}"
    );
    assert!(!text.contains('\\') && !text.contains('{'), "{text}");
    // Norwegian letters through \'hh escapes.
    let t = decode(&fixture("MAPI_ATTACH_DATA_OBJ.tnef")).unwrap();
    assert!(t.text().unwrap().contains("bodødamene"));
    let t = decode(&fixture("body.tnef")).unwrap();
    assert!(
        String::from_utf8_lossy(&t.bodies[0].bytes)
            .to_ascii_lowercase()
            .contains("<html")
    );
}

#[test]
fn broken_streams_are_refused_with_a_reason() {
    assert_eq!(decode(b""), Err(TnefError::NotTnef));
    assert_eq!(decode(b"PK\x03\x04 not tnef"), Err(TnefError::NotTnef));
    assert_eq!(decode(&SIGNATURE), Err(TnefError::Empty));
    assert_eq!(
        decode(&[&SIGNATURE[..], &[1, 0]].concat()),
        Err(TnefError::Empty)
    );
    // Cut in the middle of a file's data.
    let whole = fixture("two-files.tnef");
    let cut = &whole[..whole.len() / 2];
    let err = decode(cut).unwrap_err();
    assert!(matches!(err, TnefError::Truncated { .. }), "{err:?}");
    assert!(err.to_string().contains("cut short"), "{err}");
    // A length field claiming 4 GiB allocates nothing and is refused.
    let mut huge = [&SIGNATURE[..], &[0, 0, 2], &0x0006_800Fu32.to_le_bytes()].concat();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(b"abc");
    assert!(matches!(decode(&huge), Err(TnefError::Truncated { .. })));
}

#[test]
fn compressed_rtf_is_bounded_and_spec_example_decodes() {
    // [MS-OXRTFCP] 3.1.1: the compressed form of "{\rtf1\ansi\ansicpg1252\pard hello world}\r\n".
    let example: &[u8] = &[
        0x2d, 0x00, 0x00, 0x00, 0x2b, 0x00, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0xf1, 0xc5, 0xc7,
        0xa7, 0x03, 0x00, 0x0a, 0x00, 0x72, 0x63, 0x70, 0x67, 0x31, 0x32, 0x35, 0x42, 0x32, 0x0a,
        0xf3, 0x20, 0x68, 0x65, 0x6c, 0x09, 0x00, 0x20, 0x62, 0x77, 0x05, 0xb0, 0x6c, 0x64, 0x7d,
        0x0a, 0x80, 0x0f, 0xa0,
    ];
    assert_eq!(
        decompress_rtf(example).unwrap(),
        b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"
    );
    assert_eq!(
        rtf_to_text(b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"),
        "hello world"
    );
    // A claimed size beyond what the input could give is refused, not allocated.
    let mut lie = example.to_vec();
    lie[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(decompress_rtf(&lie), Err(RtfError::TooLarge));
    assert_eq!(decompress_rtf(&example[..10]), Err(RtfError::Short));
    let mut mela = example[..16].to_vec();
    mela[8..12].copy_from_slice(b"MELA");
    mela[4..8].copy_from_slice(&3u32.to_le_bytes());
    mela.extend_from_slice(b"abc");
    assert_eq!(decompress_rtf(&mela).unwrap(), b"abc");
}

#[test]
fn rtf_text_keeps_unicode_and_drops_tables() {
    let rtf = b"{\\rtf1{\\fonttbl{\\f0 Arial;}}{\\colortbl;\\red0;}{\\*\\generator x;}Caf\\'e9 \\uc1\\u8364?\\par na\\u239?ve\\tab end}";
    assert_eq!(rtf_to_text(rtf), "Café €\nnaïve\tend");
}

// ------------------------------------------------------------------ fuzz

/// SplitMix64: the same seed gives the same inputs on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes of a seed kept: the structure matters, not the size.
const SEED_MAX: usize = 48 * 1024;

/// The seeds: every stream (cut to [`SEED_MAX`]), the compressed RTF
/// bodies found in them, and uuencoded texts.
/// Inputs of one kind.
type Pool = Vec<Vec<u8>>;

fn seeds() -> (Pool, Pool, Pool) {
    let dir = format!("{}/tests/fixtures/tnef", env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tnef"))
        .collect();
    paths.sort();
    let (mut tnefs, mut rtfs) = (Vec::new(), Vec::new());
    for p in paths {
        let b = std::fs::read(&p).unwrap();
        // compressed RTF: "LZFu" is the third u32 of its header
        for (at, _) in b.windows(4).enumerate().filter(|(_, w)| *w == b"LZFu") {
            if at >= 8 {
                let size = u32::from_le_bytes(b[at - 8..at - 4].try_into().unwrap()) as usize;
                if let Some(rtf) = b.get(at - 8..at - 4 + size) {
                    rtfs.push(rtf.to_vec());
                }
            }
        }
        tnefs.push(b[..b.len().min(SEED_MAX)].to_vec());
    }
    let uu = vec![
        b"Hello\r\n\r\nbegin 644 cat.txt\r\n#0V%T\r\n`\r\nend\r\n\r\nAnn\r\n".to_vec(),
        b"begin 600 a b.bin\nM0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T\n#0V%T\n`\nend\nbegin 644 x\n!80``\n`\nend\n".to_vec(),
    ];
    (tnefs, rtfs, uu)
}

/// `seed` changed by one to three mutations; `other` for splicing.
fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        let len = out.len();
        match rng.below(8) {
            0 => out.truncate(rng.below(len + 1)),
            1 => {
                for _ in 0..1 + rng.below(8) {
                    if !out.is_empty() {
                        let at = rng.below(out.len());
                        out[at] ^= 1 << rng.below(8);
                    }
                }
            }
            // a length or count field: the values that break readers
            2 | 3 => {
                if len >= 4 {
                    let at = rng.below(len - 3);
                    let v: u32 = match rng.below(7) {
                        0 => 0,
                        1 => 1,
                        2 => u32::MAX,
                        3 => 0x7FFF_FFFF,
                        4 => 0x8000_0000,
                        5 => len as u32,
                        _ => rng.next() as u32 & 0xFFFF,
                    };
                    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            4 => {
                // duplicate a chunk
                if len > 0 {
                    let from = rng.below(len);
                    let to = (from + 1 + rng.below(512)).min(len);
                    let chunk = out[from..to].to_vec();
                    let at = rng.below(len + 1);
                    out.splice(at..at, chunk);
                }
            }
            5 => {
                // delete a chunk
                if len > 0 {
                    let from = rng.below(len);
                    let to = (from + 1 + rng.below(512)).min(len);
                    out.drain(from..to);
                }
            }
            6 => {
                // splice with another seed
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ => {
                // random bytes
                let at = rng.below(len + 1);
                let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, junk);
            }
        }
    }
    out
}

/// Runs one input through everything the gate would run on it, and
/// checks the bounds.
fn exercise(input: &[u8], kind: usize) {
    match kind {
        0 => {
            let mut queue = vec![(input.to_vec(), 0usize)];
            while let Some((bytes, depth)) = queue.pop() {
                if let Ok(t) = decode(&bytes) {
                    for f in &t.files {
                        assert!(
                            f.bytes.len() <= bytes.len(),
                            "a file larger than its stream"
                        );
                        if f.embedded_message && depth < 3 {
                            queue.push((f.bytes.clone(), depth + 1));
                        }
                    }
                    for b in &t.bodies {
                        assert!(b.bytes.len() <= bytes.len().saturating_mul(MAX_RTF_RATIO));
                    }
                    let _ = t.text();
                } else if let Err(e) = decode(&bytes) {
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        1 => {
            if let Ok(rtf) = decompress_rtf(input) {
                assert!(rtf.len() <= input.len().saturating_mul(MAX_RTF_RATIO));
                let _ = rtf_to_text(&rtf);
            }
            let _ = rtf_to_text(input);
        }
        _ => {
            use crate::rules::attachments::uuencode;
            let text = String::from_utf8_lossy(input);
            for b in uuencode::find_blocks(&text) {
                assert!(b.range.end <= text.len() && b.range.start < b.range.end);
                if let Ok(f) = &b.file {
                    assert!(f.len() <= b.range.len());
                }
            }
            let _ = uuencode::strip_blocks(&text);
            let _ = uuencode::decode_part(input);
        }
    }
}

/// `n` inputs from `seed`: (inputs per kind, panics). A panicking input
/// is written to the temporary directory.
fn fuzz(n: usize, seed: u64) -> ([usize; 3], usize) {
    let (tnefs, rtfs, uu) = seeds();
    assert!(rtfs.len() >= 10, "compressed RTF seeds: {}", rtfs.len());
    let pools = [&tnefs, &rtfs, &uu];
    let mut rng = Rng(seed);
    let mut counts = [0usize; 3];
    let mut panics = 0;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..n {
        let kind = match rng.below(10) {
            0..=5 => 0,
            6..=7 => 1,
            _ => 2,
        };
        let pool = pools[kind];
        let a = &pool[rng.below(pool.len())];
        let b = &pool[rng.below(pool.len())];
        let input = mutate(a, b, &mut rng);
        counts[kind] += 1;
        if std::panic::catch_unwind(|| exercise(&input, kind)).is_err() {
            panics += 1;
            let path = std::env::temp_dir().join(format!("tnef-fuzz-{seed}-{i}-kind{kind}.bin"));
            let _ = std::fs::write(&path, &input);
            eprintln!(
                "panic on input {i} (kind {kind}), written to {}",
                path.display()
            );
        }
    }
    std::panic::set_hook(hook);
    (counts, panics)
}

/// The inputs the fuzz loop once found panicking (`tests/fixtures/tnef/
/// crashes`, named `…-kind<N>.bin` by the kind of input) pass now.
#[test]
fn fuzz_crashes_found_before_stay_fixed() {
    let dir = format!("{}/tests/fixtures/tnef/crashes", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let kind: usize = name
            .rsplit_once("-kind")
            .and_then(|(_, k)| k.trim_end_matches(".bin").parse().ok())
            .unwrap_or_else(|| panic!("{name}: no kind"));
        exercise(&std::fs::read(&path).unwrap(), kind);
        n += 1;
    }
    assert!(n >= 3);
}

/// The suite's share: a few seconds.
#[test]
fn fuzz_a_few_thousand_inputs_without_a_panic() {
    let start = std::time::Instant::now();
    let (counts, panics) = fuzz(6_000, 26);
    eprintln!("{counts:?} inputs in {:?}", start.elapsed());
    assert_eq!(panics, 0);
}

/// The long run: `GUICHET_TNEF_FUZZ=1000000 GUICHET_TNEF_FUZZ_SEED=1
/// cargo test --lib tnef::tests::fuzz_long -- --ignored --nocapture`.
#[test]
#[ignore]
fn fuzz_long() {
    let n = std::env::var("GUICHET_TNEF_FUZZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seed = std::env::var("GUICHET_TNEF_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let start = std::time::Instant::now();
    let (counts, panics) = fuzz(n, seed);
    eprintln!(
        "tnef fuzz: {n} inputs (seed {seed}): {} TNEF streams, {} compressed RTF, {} uuencoded texts; {panics} panics; {:.1?}",
        counts[0],
        counts[1],
        counts[2],
        start.elapsed()
    );
    assert_eq!(panics, 0);
}
