//! File names from mail are hostile input: this module turns one into a
//! name that is safe to show, store in the database and offer for download,
//! and finds the extension the policy judges (the last one, as Windows and
//! every desktop does: `invoice.pdf.exe` is an `exe`).

/// Longest sanitised name, in bytes (UTF-8), extension included.
pub const MAX_NAME_BYTES: usize = 150;

/// An extension longer than this is not kept apart when a long name is cut:
/// it is more likely part of the name than a real type.
const MAX_KEPT_EXTENSION_BYTES: usize = 20;

/// Characters that reorder text (bidi embeddings, overrides and isolates)
/// or hide in it (zero-width, marks): `gpj.exe` shown as `exe.jpg` is the
/// classic trick. Removed, not replaced, so the name reads as stored.
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}' // LRE RLE PDF LRO RLO
        | '\u{2066}'..='\u{2069}' // LRI RLI FSI PDI
        | '\u{061C}'              // Arabic letter mark
        | '\u{2028}' | '\u{2029}' // line/paragraph separators
        | '\u{FEFF}'              // BOM / zero-width no-break space
    )
}

/// Characters Windows refuses in a file name: replaced by `_` so that the
/// agent's download keeps the name we show (and `a.txt:b.exe`, an NTFS
/// stream name, becomes the harmless `a.txt_b.exe`).
fn is_reserved_on_windows(c: char) -> bool {
    matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
}

/// Device names that Windows treats as devices whatever their extension.
fn is_windows_device(stem: &str) -> bool {
    const DEVICES: &[&str] = &[
        "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
        "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
    ];
    DEVICES.contains(&stem.to_ascii_lowercase().as_str())
}

/// A safe display/download name for a file part.
///
/// No path (only what follows the last `/` or `\`), no control, bidi or
/// zero-width characters, no NUL, no leading dots, no trailing dots or
/// spaces (Windows drops them, so `a.exe.` is an `exe`), at most
/// [`MAX_NAME_BYTES`] bytes cut on a character boundary with the extension
/// kept, and never empty: `attachment-<index>` plus `sniffed_ext` when
/// nothing usable is left.
pub fn sanitize_filename(raw: Option<&str>, index: usize, sniffed_ext: Option<&str>) -> String {
    raw.and_then(clean_name)
        .unwrap_or_else(|| fallback_name(index, sniffed_ext))
}

/// The sanitised name, or `None` when nothing usable is left of `raw`.
pub fn clean_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let mut name: String = last
        .chars()
        .filter(|&c| !c.is_control() && !is_invisible_or_bidi(c))
        .map(|c| if is_reserved_on_windows(c) { '_' } else { c })
        .collect();
    name = name
        .trim_matches(|c: char| c.is_whitespace() || c == '.')
        .to_string();
    // Leading dots would hide the file on Unix and `..` is a path; the trim
    // above removed them. Inner runs of dots are harmless and kept.
    if name.is_empty() {
        return None;
    }
    if is_windows_device(split_extension(&name).0) {
        name.insert(0, '_');
    }
    if name.len() > MAX_NAME_BYTES {
        name = shorten(&name);
    }
    Some(name)
}

pub fn fallback_name(index: usize, ext: Option<&str>) -> String {
    let ext = ext
        .map(|e| {
            e.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(MAX_KEPT_EXTENSION_BYTES)
                .collect::<String>()
        })
        .unwrap_or_default();
    if ext.is_empty() {
        format!("attachment-{index}")
    } else {
        format!("attachment-{index}.{}", ext.to_ascii_lowercase())
    }
}

/// Cut `name` to [`MAX_NAME_BYTES`] on a char boundary, keeping a short
/// extension intact at the end.
fn shorten(name: &str) -> String {
    let (stem, ext) = split_extension(name);
    match ext {
        Some(ext) if ext.len() <= MAX_KEPT_EXTENSION_BYTES => {
            let room = MAX_NAME_BYTES - 1 - ext.len();
            let stem = cut_at_char_boundary(stem, room).trim_end_matches([' ', '.']);
            format!("{stem}.{ext}")
        }
        _ => cut_at_char_boundary(name, MAX_NAME_BYTES)
            .trim_end_matches([' ', '.'])
            .to_string(),
    }
}

fn cut_at_char_boundary(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `("report.final", Some("pdf"))` for `report.final.pdf`; no extension
/// when there is no dot, or the dot starts the name.
fn split_extension(name: &str) -> (&str, Option<&str>) {
    match name.rfind('.') {
        Some(0) | None => (name, None),
        Some(i) if i + 1 == name.len() => (name, None),
        Some(i) => (&name[..i], Some(&name[i + 1..])),
    }
}

/// The extension the policy judges: the last one of the *sanitised* name,
/// lower-cased. `None` when the name has none, or when what follows the
/// last dot holds whitespace (`Report v1.2 final` has no extension).
pub fn extension_of(sanitised: &str) -> Option<String> {
    let (_, ext) = split_extension(sanitised);
    let ext = ext?;
    if ext.chars().any(char::is_whitespace) {
        return None;
    }
    Some(ext.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_table() {
        let long_pdf = format!("{}.pdf", "a".repeat(400));
        let long_docx = format!("{}.docx", "é".repeat(300)); // 2 bytes each
        let cases: Vec<(Option<&str>, Option<&str>, String)> = vec![
            (Some("report.pdf"), None, "report.pdf".into()),
            (Some("../../etc/passwd"), None, "passwd".into()),
            (
                Some("..\\..\\windows\\system32\\evil.dll"),
                None,
                "evil.dll".into(),
            ),
            (Some("/etc/shadow"), None, "shadow".into()),
            (
                Some("C:\\Users\\x\\Desktop\\cv.docx"),
                None,
                "cv.docx".into(),
            ),
            (Some("a\0b.txt"), None, "ab.txt".into()),
            (Some("photo\u{202E}gpj.exe"), None, "photogpj.exe".into()),
            (Some("x\u{2066}y\u{2069}.png"), None, "xy.png".into()),
            (Some("zero\u{200B}width.png"), None, "zerowidth.png".into()),
            (Some("tab\there\r\n.txt"), None, "tabhere.txt".into()),
            (Some(".htaccess"), None, "htaccess".into()),
            (Some("...hidden.txt"), None, "hidden.txt".into()),
            (Some("invoice.pdf.exe."), None, "invoice.pdf.exe".into()),
            (Some("invoice.pdf.exe   "), None, "invoice.pdf.exe".into()),
            (Some("a.txt:evil.exe"), None, "a.txt_evil.exe".into()),
            (Some("what?.txt"), None, "what_.txt".into()),
            (Some("CON.txt"), None, "_CON.txt".into()),
            (Some("nul"), None, "_nul".into()),
            (Some(".."), Some("png"), "attachment-3.png".into()),
            (Some("../"), None, "attachment-3".into()),
            (Some(""), Some("pdf"), "attachment-3.pdf".into()),
            (None, Some("jpg"), "attachment-3.jpg".into()),
            (None, None, "attachment-3".into()),
            (None, Some("../x"), "attachment-3.x".into()),
            (Some("\u{202E}\u{200B}"), None, "attachment-3".into()),
            (Some("Ünïcödé naïve.txt"), None, "Ünïcödé naïve.txt".into()),
            (
                Some(long_pdf.as_str()),
                None,
                format!("{}.pdf", "a".repeat(MAX_NAME_BYTES - 4)),
            ),
            (
                Some(long_docx.as_str()),
                None,
                format!("{}.docx", "é".repeat((MAX_NAME_BYTES - 5) / 2)),
            ),
        ];
        for (raw, sniffed, want) in cases {
            let got = sanitize_filename(raw, 3, sniffed);
            assert_eq!(got, want, "sanitize_filename({raw:?}, 3, {sniffed:?})");
            assert!(
                got.len() <= MAX_NAME_BYTES,
                "{raw:?} gave {} bytes",
                got.len()
            );
        }
    }

    #[test]
    fn sanitized_names_are_never_paths_nor_empty() {
        let hostile = [
            "../../etc/passwd",
            "/",
            "\\",
            ".",
            "..",
            "./.././..",
            "\0",
            "\0/\0",
            "a/b/../..",
            "\u{202E}",
            " . . ",
        ];
        for raw in hostile {
            let got = sanitize_filename(Some(raw), 0, None);
            assert!(!got.is_empty(), "{raw:?}");
            assert!(!got.contains(['/', '\\', '\0']), "{raw:?} -> {got:?}");
            assert!(!got.starts_with('.'), "{raw:?} -> {got:?}");
            assert_ne!(got, "..", "{raw:?}");
        }
    }

    #[test]
    fn long_names_are_cut_on_char_boundaries() {
        // 4-byte characters, in every alignment against the limit.
        for pad in 0..4 {
            let raw = format!("{}{}.txt", "x".repeat(pad), "😀".repeat(100));
            let got = sanitize_filename(Some(&raw), 1, None);
            assert!(
                got.len() <= MAX_NAME_BYTES,
                "pad {pad}: {} bytes",
                got.len()
            );
            assert!(got.ends_with(".txt"), "pad {pad}: {got}");
        }
        // A 500-byte name without any dot is cut, not emptied.
        let got = sanitize_filename(Some(&"b".repeat(500)), 1, None);
        assert_eq!(got.len(), MAX_NAME_BYTES);
        // An absurd "extension" is not kept apart.
        let raw = format!("a.{}", "c".repeat(300));
        assert_eq!(sanitize_filename(Some(&raw), 1, None).len(), MAX_NAME_BYTES);
    }

    #[test]
    fn extension_table() {
        let cases = [
            ("invoice.pdf.exe", Some("exe")),
            ("PHOTO.JPG", Some("jpg")),
            ("archive.tar.gz", Some("gz")),
            ("README", None),
            ("htaccess", None),
            ("Report v1.2 final", None),
            ("trailing.", None),
            ("x.Docx", Some("docx")),
        ];
        for (name, want) in cases {
            assert_eq!(
                extension_of(name).as_deref(),
                want,
                "extension_of({name:?})"
            );
        }
    }
}
