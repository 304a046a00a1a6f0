//! Throughput of the attachment gate: `check` alone, `check` plus a clamd
//! scan (when a clamd is reachable), against a baseline that only reads
//! and sums the same bytes. Files are made here: JPEG- and PDF-like files,
//! DOCX (zip) documents and text, 1–5 MB each.
//!
//! `cargo bench --bench attachment_gate` (clamd from `CLAMD_HOST`/
//! `CLAMD_PORT`, else `/tmp/guichet-rig/env`; without one that line is
//! skipped).

use std::borrow::Cow;
use std::hint::black_box;
use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use guichet::adapters::clamd::{self, ScanOutcome};
use guichet::rules::attachments::{FilePart, Origin, Policy, check};
use guichet::settings::ClamdAddress;

/// Deterministic pseudo-random bytes (xorshift), incompressible like media.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    let line =
        b"2026-11-25 10:00:00 INFO request served in 12 ms, user=alice@example.com status=200\n";
    line.iter().copied().cycle().take(len).collect()
}

fn docx(len: usize, seed: u64) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflate = zip::write::SimpleFileOptions::default();
    let stored = deflate.compression_method(zip::CompressionMethod::Stored);
    w.start_file("[Content_Types].xml", deflate).unwrap();
    w.write_all(b"<?xml version=\"1.0\"?><Types/>").unwrap();
    w.start_file("word/document.xml", deflate).unwrap();
    w.write_all(&text(len / 4)).unwrap();
    for i in 0..4 {
        w.start_file(format!("word/media/image{i}.png"), stored)
            .unwrap();
        let mut img = b"\x89PNG\r\n\x1a\n".to_vec();
        img.extend(noise(len / 5, seed + i));
        w.write_all(&img).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn files() -> Vec<(String, Vec<u8>)> {
    const MB: usize = 1024 * 1024;
    let mut out = Vec::new();
    for (i, size) in [1, 2, 3, 4, 5].into_iter().enumerate() {
        let seed = i as u64 * 7919 + 1;
        let mut jpg = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00".to_vec();
        jpg.extend(noise(size * MB, seed));
        out.push((format!("photo{i}.jpg"), jpg));
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.extend(noise(size * MB, seed + 1));
        out.push((format!("scan{i}.pdf"), pdf));
        out.push((format!("report{i}.docx"), docx(size * MB, seed + 2)));
        out.push((format!("server{i}.log"), text(size * MB)));
    }
    out
}

fn clamd_address() -> Option<ClamdAddress> {
    let mut vars: std::collections::HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CLAMD_"))
        .collect();
    if !vars.contains_key("CLAMD_PORT") {
        let text = std::fs::read_to_string("/tmp/guichet-rig/env").ok()?;
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
    }
    Some(ClamdAddress::Tcp {
        host: vars
            .get("CLAMD_HOST")
            .cloned()
            .unwrap_or("127.0.0.1".into()),
        port: vars.get("CLAMD_PORT")?.parse().ok()?,
    })
}

/// Best of `rounds` runs of `f` over all files, as MB/s.
fn measure(total_bytes: usize, rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let started = Instant::now();
        f();
        best = best.min(started.elapsed());
    }
    total_bytes as f64 / (1024.0 * 1024.0) / best.as_secs_f64()
}

fn main() {
    // `cargo test --all-targets` runs bench targets too: only measure when
    // `cargo bench` asks
    if !std::env::args().any(|a| a == "--bench") {
        println!("attachment gate benchmark: run it with `cargo bench --bench attachment_gate`");
        return;
    }
    let files = files();
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let allowed: Vec<String> = ["jpg", "pdf", "docx", "log"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let policy = Policy {
        enabled: true,
        max_size_bytes: 6 * 1024 * 1024,
        allowed_extensions: &allowed,
    };
    let parts: Vec<FilePart> = files
        .iter()
        .enumerate()
        .map(|(i, (name, bytes))| FilePart {
            index: i + 1,
            raw_name: Some(name.clone()),
            declared_type: "application/octet-stream".into(),
            inline: false,
            bytes: Cow::Borrowed(bytes),
            malformed: false,
            content_id: None,
            origin: Origin::Mime,
        })
        .collect();
    // Every generated file must pass, or the gate would be measured on a
    // shortcut (a refusal stops early).
    for p in &parts {
        let c = check(&policy, p);
        assert!(c.refusal.is_none(), "{}: {:?}", c.filename, c.refusal);
    }
    println!(
        "attachment gate: {} files, {:.1} MB (jpg, pdf, docx, log; 1-5 MB each)",
        files.len(),
        total as f64 / (1024.0 * 1024.0)
    );
    let raw = measure(total, 10, || {
        let mut sum = 0u64;
        for (_, b) in &files {
            for &x in b.iter() {
                sum = sum.wrapping_add(u64::from(x));
            }
        }
        black_box(sum);
    });
    println!("raw read: {raw:.0} MB/s");
    let gate = measure(total, 10, || {
        for p in &parts {
            black_box(check(&policy, black_box(p)));
        }
    });
    println!("gate: {gate:.0} MB/s ({:.2}x raw read)", gate / raw);
    let by_kind: Vec<String> = ["jpg", "pdf", "docx", "log"]
        .iter()
        .map(|kind| {
            let of_kind: Vec<&FilePart> = parts
                .iter()
                .filter(|p| p.raw_name.as_deref().is_some_and(|n| n.ends_with(kind)))
                .collect();
            let bytes: usize = of_kind.iter().map(|p| p.bytes.len()).sum();
            let speed = measure(bytes, 10, || {
                for p in &of_kind {
                    black_box(check(&policy, black_box(p)));
                }
            });
            format!("{kind} {speed:.0}")
        })
        .collect();
    println!("gate by type (MB/s): {}", by_kind.join(", "));
    let Some(addr) = clamd_address() else {
        println!("gate + clamd: skipped (no clamd: set CLAMD_HOST/CLAMD_PORT or start the rig)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let Err(e) = rt.block_on(clamd::ping(&addr)) {
        println!("gate + clamd: skipped ({e:#})");
        return;
    }
    let with_av = measure(total, 3, || {
        rt.block_on(async {
            for p in &parts {
                let c = check(&policy, p);
                if c.refusal.is_none() {
                    let outcome = clamd::scan(&addr, &p.bytes, Duration::from_secs(60)).await;
                    assert_eq!(outcome, ScanOutcome::Clean, "{}", c.filename);
                }
            }
        })
    });
    println!(
        "gate + clamd: {with_av:.0} MB/s ({:.3}x raw read)",
        with_av / raw
    );
}
