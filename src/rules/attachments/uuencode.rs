//! uuencoded files: the `begin 644 name` … `end` blocks old clients
//! (Lotus Notes, Outlook Express, scripts) paste into a text body, and
//! the parts sent with `Content-Transfer-Encoding: x-uuencode`.
//!
//! A block starts at a line `begin <octal mode> <name>` followed by a
//! data line; what follows up to the `end` line is the file. Each data
//! line is a length character (`' ' + n`, `` ` `` for 0) and `4⌈n/3⌉`
//! characters of `' '..='`'`. Tolerated: up to two trailing spaces
//! stripped by a mail system (read as zeros), characters past a line's length (some
//! encoders add a check character), CRLF or LF, blank lines and junk
//! after `end`. Refused with the line number ([`UuError`]): a character
//! outside the alphabet within a line's length, a length character out
//! of range, no `end` line. Bounds: the file is never larger than the
//! block (3 bytes per 4 characters), at most [`MAX_BLOCKS`] per text.

use std::fmt;

/// At most this many blocks are taken out of one text.
pub const MAX_BLOCKS: usize = 100;

/// A block found in a text: where it is and what it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Byte range of the block in the text, `begin` line to `end` line
    /// included.
    pub range: std::ops::Range<usize>,
    /// The name on the `begin` line (may be empty).
    pub name: String,
    pub file: Result<Vec<u8>, UuError>,
}

/// Why a block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UuError {
    /// Line `line` (1-based, counted from the `begin` line) is not uuencode.
    BadLine { line: usize, why: &'static str },
    /// The block has no `end` line.
    NoEnd,
}

impl fmt::Display for UuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UuError::BadLine { line, why } => {
                write!(f, "uuencoded line {line} after `begin` is malformed: {why}")
            }
            UuError::NoEnd => write!(f, "the uuencoded block has no `end` line"),
        }
    }
}

impl std::error::Error for UuError {}

/// The `begin` line's name, if `line` is one (`begin 644 name`).
fn begin_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("begin ")?;
    let (mode, name) = rest.split_once(' ').unwrap_or((rest, ""));
    let octal = (3..=4).contains(&mode.len()) && mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
    octal.then(|| name.trim())
}

/// One data line's bytes, appended to `out`. `Ok(false)` for a zero-length line.
fn decode_line(line: &[u8], out: &mut Vec<u8>) -> Result<bool, &'static str> {
    let Some(&first) = line.first() else {
        return Err("empty line");
    };
    if !(b' '..=b'`').contains(&first) {
        return Err("length character out of range");
    }
    let n = usize::from((first - b' ') & 0x3F);
    if n == 0 {
        return Ok(false);
    }
    let chars = n.div_ceil(3) * 4;
    let body = &line[1..];
    // A mail system may strip the trailing spaces (zeros) of a line; more
    // than two missing would make the file larger than its text.
    if body.len() + 2 < chars {
        return Err("line shorter than its length character says");
    }
    let mut quad = [0u8; 4];
    let mut produced = 0;
    for group in 0..chars / 4 {
        for (k, q) in quad.iter_mut().enumerate() {
            // A missing character is a trailing space a mail system stripped.
            let c = body.get(group * 4 + k).copied().unwrap_or(b' ');
            if !(b' '..=b'`').contains(&c) {
                return Err("character outside the uuencode alphabet");
            }
            *q = (c - b' ') & 0x3F;
        }
        let bytes = [
            (quad[0] << 2) | (quad[1] >> 4),
            (quad[1] << 4) | (quad[2] >> 2),
            (quad[2] << 6) | quad[3],
        ];
        let take = (n - produced).min(3);
        out.extend_from_slice(&bytes[..take]);
        produced += take;
    }
    Ok(true)
}

/// Whether `line` reads as a uuencode data line, its length aside (to
/// tell a block from prose that happens to start with "begin 644").
fn looks_like_data(line: &str) -> bool {
    let trimmed = line.trim_end_matches(['\r', '\n']);
    !trimmed.is_empty()
        && trimmed.len() <= 128
        && trimmed.bytes().all(|b| (b' '..=b'`').contains(&b))
}

/// The uuencoded blocks of `text`, in order.
pub fn find_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    // (start offset, line) for every line, ends kept.
    let mut lines: Vec<(usize, &str)> = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        lines.push((at, line));
        at += line.len();
    }
    let mut i = 0;
    while i < lines.len() && blocks.len() < MAX_BLOCKS {
        let (start, line) = lines[i];
        let clean = line.trim_end_matches(['\r', '\n']);
        let Some(name) = begin_name(clean) else {
            i += 1;
            continue;
        };
        if !lines.get(i + 1).is_some_and(|(_, l)| looks_like_data(l)) {
            i += 1;
            continue;
        }
        let mut file = Vec::new();
        let mut result: Result<(), UuError> = Err(UuError::NoEnd);
        let mut j = i + 1;
        let mut ended = false; // a zero-length line was seen
        while j < lines.len() {
            let l = lines[j].1.trim_end_matches(['\r', '\n']);
            if l.trim_end() == "end" {
                result = Ok(());
                j += 1;
                break;
            }
            let data = l.trim_end();
            if data.is_empty() {
                // a zero-length line whose space a mail system stripped
                ended = true;
                j += 1;
                continue;
            }
            let before = file.len();
            match decode_line(data.as_bytes(), &mut file) {
                Ok(false) => ended = true,
                Ok(true) if ended => {
                    file.truncate(before);
                    result = Err(UuError::BadLine {
                        line: j - i,
                        why: "data after the file's last line",
                    });
                    j += 1;
                    break;
                }
                Ok(true) => {}
                // junk after the last data line: the block is over (and
                // what the line gave before its bad character is not data)
                Err(_) if ended => {
                    file.truncate(before);
                    break;
                }
                Err(why) => {
                    result = Err(UuError::BadLine { line: j - i, why });
                    j += 1;
                    break;
                }
            }
            j += 1;
        }
        if result == Err(UuError::NoEnd) && ended {
            // `end` missing after a proper zero-length line: still whole.
            result = Ok(());
        }
        let end = lines.get(j).map(|(s, _)| *s).unwrap_or(text.len());
        blocks.push(Block {
            range: start..end,
            name: name.to_string(),
            file: result.map(|()| file),
        });
        i = j.max(i + 1);
    }
    blocks
}

/// `text` without its uuencoded blocks (each leaves one line break).
pub fn strip_blocks(text: &str) -> String {
    let blocks = find_blocks(text);
    if blocks.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for b in &blocks {
        out.push_str(&text[from..b.range.start]);
        from = b.range.end;
    }
    out.push_str(&text[from..]);
    out
}

/// The file of a part that is one uuencoded block (`x-uuencode`), with
/// its name; `None` when the part does not start with a block.
pub fn decode_part(bytes: &[u8]) -> Option<Block> {
    let head = &bytes[..bytes.len().min(1024)];
    let lead = head.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if !head[lead..].starts_with(b"begin ") {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes[lead..]);
    find_blocks(&text)
        .into_iter()
        .next()
        .filter(|b| b.range.start == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `uuencode` of "Cat" and of 45+ bytes, as the tool writes them.
    const CAT: &str = "begin 644 cat.txt\n#0V%T\n`\nend\n";

    fn encode(name: &str, data: &[u8]) -> String {
        let mut s = format!("begin 644 {name}\n");
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
            s.push('\n');
        }
        s + "`\nend\n"
    }

    #[test]
    fn a_block_decodes_and_leaves_the_text() {
        let text = format!("Hello,\n\nsee the file.\n\n{CAT}\nRegards\n");
        let blocks = find_blocks(&text);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].name, "cat.txt");
        assert_eq!(blocks[0].file.as_deref(), Ok(&b"Cat"[..]));
        assert_eq!(
            strip_blocks(&text),
            "Hello,\n\nsee the file.\n\n\nRegards\n"
        );
    }

    #[test]
    fn round_trips_binary_and_tolerates_crlf_stripped_spaces_and_junk() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let enc = encode("bin.dat", &data);
        assert_eq!(find_blocks(&enc)[0].file.as_deref(), Ok(&data[..]));
        let crlf = enc.replace('\n', "\r\n");
        assert_eq!(find_blocks(&crlf)[0].file.as_deref(), Ok(&data[..]));
        // A mail system that strips trailing spaces (zeros at line ends).
        let data: Vec<u8> = [0x43, 0x61, 0x40].repeat(20);
        let enc = encode("z.bin", &data).replace('`', " ");
        let stripped: String = enc
            .lines()
            .map(|l| l.trim_end().to_string() + "\n")
            .collect();
        assert_ne!(stripped, enc);
        assert_eq!(find_blocks(&stripped)[0].file.as_deref(), Ok(&data[..]));
        // But a line much shorter than its length says is malformed (its
        // file would be larger than its text).
        let short =
            "begin 644 z\nM0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T\n`\nend\n";
        assert!(matches!(
            find_blocks(short)[0].file,
            Err(UuError::BadLine { line: 1, .. })
        ));
        // A check character past the line's length, junk after `end`.
        let text = "begin 644 cat.txt\n#0V%TX\n`\nend\n-- \nsig\n";
        // No `end` after the zero-length line: whole all the same.
        let no_end = "begin 644 cat.txt\n#0V%T\n`\nthanks\n";
        assert_eq!(find_blocks(no_end)[0].file.as_deref(), Ok(&b"Cat"[..]));
        let b = &find_blocks(text)[0];
        assert_eq!(b.file.as_deref(), Ok(&b"Cat"[..]));
        // Junk after the zero-length line that starts like data (the
        // fuzz loop's find: its first bytes were kept as part of the file).
        let junk = format!(
            "begin 644 x\n!80``\n`\nM0V%T0V%T\0{}0V%\n",
            "0V%T".repeat(13)
        );
        let jb = &find_blocks(&junk)[0];
        assert_eq!(jb.file.as_deref(), Ok(&b"a"[..]));
        assert_eq!(&text[b.range.end..], "-- \nsig\n");
    }

    #[test]
    fn malformed_blocks_are_refused_with_the_line() {
        let bad = "begin 644 a.bin\nM0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T0V%T\n#0v%t\n`\nend\n";
        let b = &find_blocks(bad)[0];
        assert_eq!(
            b.file,
            Err(UuError::BadLine {
                line: 2,
                why: "character outside the uuencode alphabet"
            })
        );
        assert!(b.file.as_ref().unwrap_err().to_string().contains("line 2"));
        let cut = "begin 644 a.bin\n#0V%T\n#0V%T\n";
        assert_eq!(find_blocks(cut)[0].file, Err(UuError::NoEnd));
        let gap = "begin 644 a.bin\n#0V%T\n\n#0V%T\n`\nend\n";
        assert!(matches!(
            find_blocks(gap)[0].file,
            Err(UuError::BadLine { line: 3, .. })
        ));
    }

    #[test]
    fn prose_is_not_a_block() {
        for text in [
            "begin 644 is how you start\nand then you write prose.\nend\n",
            "begin 9999 x\n#0V%T\nend\n",
            "please begin 644 x\n#0V%T\nend\n",
            "begin 644\n",
        ] {
            assert!(find_blocks(text).is_empty(), "{text:?}");
            assert_eq!(strip_blocks(text), text);
        }
    }

    #[test]
    fn a_part_that_is_one_block() {
        let b = decode_part(format!("\r\n{CAT}").as_bytes()).unwrap();
        assert_eq!(
            (b.name.as_str(), b.file.as_deref()),
            ("cat.txt", Ok(&b"Cat"[..]))
        );
        assert!(decode_part(b"%PDF-1.4").is_none());
    }
}
