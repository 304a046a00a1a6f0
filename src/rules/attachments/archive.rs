//! Looking inside zip containers (zip files and the Office/OpenDocument
//! formats built on zip) without unpacking them: list the entries, refuse
//! programs and scripts by name and by their first bytes, and refuse bombs
//! by bounding entries, declared expansion and the bytes actually inflated.

use std::io::{Cursor, Read};

use super::filename::{extension_of, sanitize_filename};
use super::sniff;

/// More entries than any document or sensible archive has.
pub const MAX_ENTRIES: usize = 10_000;
/// Declared uncompressed total over compressed size, beyond which an
/// archive is a bomb (text compresses 5–20×, Office XML up to ~60×)...
pub const MAX_RATIO: u64 = 100;
/// ...unless the total stays under this floor, where ratio does not matter.
pub const RATIO_FLOOR_BYTES: u64 = 10 * 1024 * 1024;
/// No archive may declare more than this in total, whatever its size.
pub const MAX_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;
/// Bytes inflated from each entry to recognise programs.
const PREFIX_BYTES: u64 = 4096;
/// Zip files inside zip files are opened this deep, no deeper.
pub const MAX_DEPTH: u8 = 3;
/// Bytes inflated, over the whole inspection, to open nested archives.
const NESTED_BUDGET_BYTES: u64 = 64 * 1024 * 1024;

/// Extensions of files that run when opened: refused inside archives and,
/// in [`super::check`], as the extension of the file itself.
#[rustfmt::skip]
pub const DANGEROUS_EXTENSIONS: &[&str] = &[
    // SPEC's list
    "exe", "bat", "cmd", "com", "scr", "pif", "php", "js", "html", "htm", "vbs", "ps1", "msi",
    "jar", "sh",
    // their close relatives (Windows script hosts, shortcuts, installers,
    // shells, server pages, macro-enabled Office formats)
    "dll", "cpl", "msp", "hta", "wsf", "wsh", "vbe", "jse", "lnk", "reg", "psm1", "apk",
    "xhtml", "phtml", "php5", "bash", "zsh", "csh", "ksh", "app", "gadget", "scf", "inf",
    "sys", "appref-ms", "xll", "xlam", "docm", "xlsm", "pptm", "dotm", "xltm",
];

/// Office and OpenDocument macro containers: scripts in all but name.
fn is_macro_entry(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with("vbaproject.bin")
        || lower.ends_with("vbadata.xml")
        || lower.starts_with("basic/")
        || lower.starts_with("scripts/")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZipProblem {
    /// An entry that is a program or script (its display name, and what).
    Holds { entry: String, what: String },
    /// Too many entries, or declared or actual expansion past the bounds.
    TooLarge,
    /// Not a readable zip, encrypted, or a compression method we lack.
    Unreadable(String),
}

/// What inspecting a zip found: its entry names (for format checks), and
/// the first problem, if any.
#[derive(Debug, Default)]
pub struct ZipFindings {
    pub names: Vec<String>,
    pub problem: Option<ZipProblem>,
}

pub fn inspect_zip(bytes: &[u8]) -> ZipFindings {
    let mut budget = NESTED_BUDGET_BYTES;
    inspect(bytes, 0, &mut budget)
}

fn inspect(bytes: &[u8], depth: u8, budget: &mut u64) -> ZipFindings {
    let mut found = ZipFindings::default();
    // Refuse a huge directory before the zip reader allocates for it.
    if declared_entry_count(bytes).is_some_and(|n| n > MAX_ENTRIES as u64) {
        found.problem = Some(ZipProblem::TooLarge);
        return found;
    }
    let mut archive = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(a) => a,
        Err(e) => {
            found.problem = Some(ZipProblem::Unreadable(e.to_string()));
            return found;
        }
    };
    if archive.len() > MAX_ENTRIES {
        found.problem = Some(ZipProblem::TooLarge);
        return found;
    }
    // Pass 1: the directory alone (names, declared sizes, encryption).
    let mut declared_total: u64 = 0;
    let mut nested = Vec::new();
    for i in 0..archive.len() {
        let entry = match archive.by_index_raw(i) {
            Ok(e) => e,
            Err(e) => {
                found.problem = Some(ZipProblem::Unreadable(e.to_string()));
                return found;
            }
        };
        let name = entry.name().to_string();
        declared_total = declared_total.saturating_add(entry.size());
        let is_file = !entry.is_dir();
        let encrypted = entry.encrypted();
        found.names.push(name.clone());
        if !is_file {
            continue;
        }
        if let Some(what) = dangerous_name(&name) {
            found.problem = Some(ZipProblem::Holds {
                entry: display_entry(&name),
                what,
            });
            return found;
        }
        if encrypted {
            found.problem = Some(ZipProblem::Unreadable(format!(
                "{} is password-protected",
                display_entry(&name)
            )));
            return found;
        }
    }
    let ratio_limit = (bytes.len() as u64)
        .saturating_mul(MAX_RATIO)
        .max(RATIO_FLOOR_BYTES);
    if declared_total > MAX_TOTAL_BYTES || declared_total > ratio_limit {
        found.problem = Some(ZipProblem::TooLarge);
        return found;
    }
    // Pass 2: the first bytes of each file, since names can lie.
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                found.problem = Some(ZipProblem::Unreadable(e.to_string()));
                return found;
            }
        };
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        let mut prefix = Vec::with_capacity(PREFIX_BYTES as usize);
        if let Err(e) = (&mut entry).take(PREFIX_BYTES).read_to_end(&mut prefix) {
            found.problem = Some(ZipProblem::Unreadable(format!(
                "{}: {e}",
                display_entry(&name)
            )));
            return found;
        }
        if let Some(what) = sniff::program(&prefix) {
            found.problem = Some(ZipProblem::Holds {
                entry: display_entry(&name),
                what: what.to_string(),
            });
            return found;
        }
        if prefix.starts_with(b"PK\x03\x04") {
            nested.push(i);
        }
    }
    // Pass 3: zip files inside, within depth and inflation budget.
    for i in nested {
        if depth + 1 >= MAX_DEPTH {
            found.problem = Some(ZipProblem::Unreadable(
                "archives nested too deep".to_string(),
            ));
            return found;
        }
        let Ok(entry) = archive.by_index(i) else {
            continue; // read successfully in pass 2
        };
        let name = entry.name().to_string();
        let mut inner = Vec::new();
        match entry.take(*budget + 1).read_to_end(&mut inner) {
            Ok(n) if n as u64 > *budget => {
                found.problem = Some(ZipProblem::TooLarge);
                return found;
            }
            Ok(n) => *budget -= n as u64,
            Err(e) => {
                found.problem = Some(ZipProblem::Unreadable(format!(
                    "{}: {e}",
                    display_entry(&name)
                )));
                return found;
            }
        }
        let inner_found = inspect(&inner, depth + 1, budget);
        if let Some(problem) = inner_found.problem {
            found.problem = Some(match problem {
                ZipProblem::Holds { entry, what } => ZipProblem::Holds {
                    entry: format!("{}/{entry}", display_entry(&name)),
                    what,
                },
                other => other,
            });
            return found;
        }
    }
    found
}

/// Why an entry's name alone makes it a program or script.
fn dangerous_name(name: &str) -> Option<String> {
    if is_macro_entry(name) {
        return Some("Office macros".to_string());
    }
    let base = sanitize_filename(Some(name), 0, None);
    let ext = extension_of(&base)?;
    DANGEROUS_EXTENSIONS
        .contains(&ext.as_str())
        .then(|| format!(".{ext}"))
}

/// An entry name fit to show a customer: the path kept (it helps them find
/// the file), each component cleaned like a file name.
fn display_entry(name: &str) -> String {
    let parts: Vec<String> = name
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .map(|p| sanitize_filename(Some(p), 0, None))
        .collect();
    let joined = parts.join("/");
    if joined.len() <= 200 {
        return joined;
    }
    // Keep the end: the file's own name is what the customer recognises.
    let mut start = joined.len() - 200;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &joined[start..])
}

/// The entry count the end-of-central-directory record claims (u16), or
/// `None` when there is none or it defers to Zip64 (the zip reader caps
/// those by the directory's real size).
fn declared_entry_count(bytes: &[u8]) -> Option<u64> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let search_from = bytes.len().saturating_sub(22 + 65_535);
    let tail = &bytes[search_from..];
    let pos = tail.windows(4).rposition(|w| w == EOCD)?;
    let rec = &tail[pos..];
    if rec.len() < 22 {
        return None;
    }
    let total = u16::from_le_bytes([rec[10], rec[11]]);
    (total != 0xFFFF).then_some(u64::from(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn inspect_table() {
        let inner_exe = zip_of(&[("tool.bin", b"#!/bin/sh\necho hi\n")]);
        let inner_ok = zip_of(&[("a.txt", b"hello")]);
        let cases: Vec<(&str, Vec<u8>, Option<ZipProblem>)> = vec![
            (
                "plain",
                zip_of(&[("a.txt", b"hi"), ("b.csv", b"1,2")]),
                None,
            ),
            (
                "exe by name",
                zip_of(&[("a.txt", b"hi"), ("setup.EXE", b"whatever")]),
                Some(ZipProblem::Holds {
                    entry: "setup.EXE".into(),
                    what: ".exe".into(),
                }),
            ),
            (
                "double extension",
                zip_of(&[("docs/invoice.pdf.js", b"x")]),
                Some(ZipProblem::Holds {
                    entry: "docs/invoice.pdf.js".into(),
                    what: ".js".into(),
                }),
            ),
            (
                "script by content",
                zip_of(&[("notes.txt", b"#!/usr/bin/perl\n")]),
                Some(ZipProblem::Holds {
                    entry: "notes.txt".into(),
                    what: "script (#!)".into(),
                }),
            ),
            (
                "macros",
                zip_of(&[("word/vbaProject.bin", b"\0\0")]),
                Some(ZipProblem::Holds {
                    entry: "word/vbaProject.bin".into(),
                    what: "Office macros".into(),
                }),
            ),
            (
                "nested",
                zip_of(&[("inner.zip", &inner_exe)]),
                Some(ZipProblem::Holds {
                    entry: "inner.zip/tool.bin".into(),
                    what: "script (#!)".into(),
                }),
            ),
            ("nested clean", zip_of(&[("inner.zip", &inner_ok)]), None),
            (
                "path traversal names are only names",
                zip_of(&[("../../etc/cron.d/x.sh", b"x")]),
                Some(ZipProblem::Holds {
                    entry: "etc/cron.d/x.sh".into(),
                    what: ".sh".into(),
                }),
            ),
        ];
        for (label, bytes, want) in cases {
            let got = inspect_zip(&bytes).problem;
            assert_eq!(got, want, "inspect_zip({label})");
        }
    }

    #[test]
    fn garbage_is_unreadable() {
        for bytes in [&b"PK\x03\x04garbage"[..], b"", b"PK\x05\x06"] {
            let got = inspect_zip(bytes).problem;
            assert!(
                matches!(got, Some(ZipProblem::Unreadable(_))),
                "{bytes:?}: {got:?}"
            );
        }
    }

    #[test]
    fn nested_archives_are_inflated_within_a_budget() {
        let inner = zip_of(&[("a.txt", &[b'x'; 20_000][..])]);
        let outer = zip_of(&[("inner.zip", &inner)]);
        // Room for the inner zip: inspected, clean.
        let mut budget = inner.len() as u64;
        assert_eq!(inspect(&outer, 0, &mut budget).problem, None);
        assert_eq!(budget, 0);
        // One byte short: refused, whatever the directory declares.
        let mut budget = inner.len() as u64 - 1;
        assert_eq!(
            inspect(&outer, 0, &mut budget).problem,
            Some(ZipProblem::TooLarge)
        );
    }

    #[test]
    fn too_deep_is_refused() {
        let mut z = zip_of(&[("a.txt", b"x")]);
        for i in 0..MAX_DEPTH {
            z = zip_of(&[(&format!("level{i}.zip"), &z)]);
        }
        let got = inspect_zip(&z).problem;
        assert!(matches!(got, Some(ZipProblem::Unreadable(_))), "{got:?}");
    }
}
