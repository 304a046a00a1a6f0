//! `guichet fuzz`: a stable-toolchain mutation loop over the inbound path
//! (issue 13). Seeds are real mails (the corpus); each input is a seed
//! changed by one to three mutations (truncation, bit flips, duplicated
//! and reordered headers, nested parts, spliced halves, broken
//! boundaries, odd encodings), deterministic from `--seed`. Each input
//! goes through the whole ingest as a dry run (parse, facts, robots,
//! sender, attachment gate, quote stripping, threading, the conversation
//! decision) against a scratch store that holds the seeds as tickets, so
//! that replies reach the decision with a ticket in view.
//!
//! A panic is caught by ingest (one message never stops the mailbox) and
//! counted here through the panic hook; an input that takes longer than
//! [`HANG`] is a hang. Each one found is written to `--crashes` as a
//! fixture and the run fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::settings::Settings;
use crate::store::Store;

use super::Ctx;
use super::ingest::{self, Options, Source};

/// An input running longer than this is a hang.
pub const HANG: Duration = Duration::from_secs(10);
/// Bytes of a seed kept (bigger mails are cut: the mutations matter, not
/// the size).
const SEED_MAX: usize = 256 * 1024;

/// A small, fast, deterministic generator (SplitMix64): the same seed
/// gives the same inputs on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// In `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The mutations, by name (for the report).
pub const MUTATIONS: [&str; 10] = [
    "truncate",
    "bit flips",
    "duplicate header",
    "reorder headers",
    "nest in multipart",
    "nest as message/rfc822",
    "splice two seeds",
    "break boundaries",
    "odd encodings",
    "junk bytes",
];

/// Where the header ends (the blank line), if there is one.
fn header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(raw.len())
}

/// The header's fields (each with its folded lines), and the rest.
fn fields(raw: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let end = header_end(raw);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in raw[..end].split_inclusive(|b| *b == b'\n') {
        match (line.first(), out.last_mut()) {
            (Some(b' ' | b'\t'), Some(last)) => last.extend_from_slice(line),
            _ => out.push(line.to_vec()),
        }
    }
    (out, raw[end..].to_vec())
}

/// `seed` changed by mutation `which`; `other` is a second seed (splice).
pub fn mutate(seed: &[u8], other: &[u8], which: usize, rng: &mut Rng) -> Vec<u8> {
    match which % MUTATIONS.len() {
        0 => seed[..rng.below(seed.len() + 1)].to_vec(),
        1 => {
            let mut out = seed.to_vec();
            if !out.is_empty() {
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(out.len());
                    out[at] ^= 1 << rng.below(8);
                }
            }
            out
        }
        2 => {
            let (mut f, body) = fields(seed);
            if !f.is_empty() {
                let pick = f[rng.below(f.len())].clone();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(f.len() + 1);
                    f.insert(at, pick.clone());
                }
            }
            [f.concat(), body].concat()
        }
        3 => {
            let (mut f, body) = fields(seed);
            for _ in 0..1 + rng.below(4) {
                if f.len() > 1 {
                    let (a, b) = (rng.below(f.len()), rng.below(f.len()));
                    f.swap(a, b);
                }
            }
            [f.concat(), body].concat()
        }
        4 => {
            let depth = 1 + rng.below(40);
            let mut out = seed.to_vec();
            for d in 0..depth {
                out = [
                    format!("Content-Type: multipart/mixed; boundary=\"n{d}\"\r\n\r\n--n{d}\r\n")
                        .as_bytes(),
                    &out,
                    format!("\r\n--n{d}--\r\n").as_bytes(),
                ]
                .concat();
            }
            [
                b"From: a@b.test\r\nSubject: nested\r\nMIME-Version: 1.0\r\n".as_slice(),
                &out,
            ]
            .concat()
        }
        5 => [
            b"From: fwd@b.test\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n\
              Content-Type: multipart/mixed; boundary=\"f\"\r\n\r\n--f\r\n\
              Content-Type: text/plain\r\n\r\nsee below\r\n--f\r\n\
              Content-Type: message/rfc822\r\n\r\n"
                .as_slice(),
            seed,
            b"\r\n--f--\r\n",
        ]
        .concat(),
        6 => {
            let a = rng.below(seed.len() + 1);
            let b = rng.below(other.len() + 1);
            [&seed[..a], &other[b..]].concat()
        }
        7 => {
            let text = String::from_utf8_lossy(seed).into_owned();
            let out = match rng.below(3) {
                0 => text.replace("--\r\n", "\r\n"),
                1 => text.replace("boundary=", "boundary=x"),
                _ => text.replacen("\r\n--", "\r\n-- ", 1 + rng.below(3)),
            };
            out.into_bytes()
        }
        8 => {
            let odd = [
                "base64",
                "quoted-printable",
                "x-uuencode",
                "8bit",
                "binary",
                "bogus",
            ];
            let charsets = ["utf-7", "iso-2022-jp", "x-unknown", "utf-16", "gb18030", ""];
            String::from_utf8_lossy(seed)
                .replace(
                    "Content-Transfer-Encoding: 7bit",
                    &format!("Content-Transfer-Encoding: {}", odd[rng.below(odd.len())]),
                )
                .replace(
                    "charset=",
                    &format!("charset={}", charsets[rng.below(charsets.len())]),
                )
                .into_bytes()
        }
        _ => {
            let mut out = seed.to_vec();
            let at = rng.below(out.len() + 1);
            let junk: Vec<u8> = match rng.below(4) {
                0 => vec![b'A'; 1 + rng.below(200_000)],
                1 => (0..1 + rng.below(4096))
                    .map(|_| rng.next_u64() as u8)
                    .collect(),
                2 => b"=?utf-8?B?".repeat(1 + rng.below(500)),
                _ => b"\r\n\r\n\0\0\xff\xfe".repeat(1 + rng.below(50)),
            };
            out.splice(at..at, junk);
            out
        }
    }
}

/// One input: a seed with one to three mutations.
pub fn input(seeds: &[Vec<u8>], rng: &mut Rng) -> (Vec<u8>, Vec<&'static str>) {
    let mut out = seeds[rng.below(seeds.len())].clone();
    let mut applied = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let which = rng.below(MUTATIONS.len());
        let other = &seeds[rng.below(seeds.len())];
        out = mutate(&out, other, which, rng);
        applied.push(MUTATIONS[which]);
    }
    (out, applied)
}

/// Every file under `paths` that looks like a mail (`.eml`, `.msg`,
/// `.txt`, or no extension), at most [`SEED_MAX`] bytes of each.
pub fn read_seeds(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    fn walk(p: &Path, out: &mut Vec<Vec<u8>>) {
        if p.is_dir() {
            let Ok(entries) = std::fs::read_dir(p) else {
                return;
            };
            let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                walk(&e, out);
            }
        } else {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if matches!(ext, "eml" | "msg" | "txt" | "mbox" | "")
                && let Ok(mut bytes) = std::fs::read(p)
            {
                bytes.truncate(SEED_MAX);
                if !bytes.is_empty() {
                    out.push(bytes);
                }
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out);
    }
    out
}

/// What a run found.
#[derive(Debug, serde::Serialize)]
pub struct FuzzReport {
    pub inputs: u64,
    pub seeds: usize,
    pub panics: u64,
    pub hangs: u64,
    pub slowest_ms: u128,
    pub seconds: f64,
    pub crashes_written: Vec<String>,
}

/// Runs `inputs` mutated inputs through ingest (dry run) under `settings`
/// (its store is a scratch one). Crashes go to `crashes` as `.eml`.
pub async fn run(
    settings: &Settings,
    seeds: Vec<Vec<u8>>,
    inputs: u64,
    seed: u64,
    crashes: &Path,
) -> anyhow::Result<FuzzReport> {
    anyhow::ensure!(!seeds.is_empty(), "no seed mail found");
    let store = Store::connect(&settings.database.url).await?;
    store.migrate().await?;
    let templates = crate::mail::templates::Templates::load(None)?;
    let now = chrono::Utc::now();
    let ctx = Ctx {
        settings,
        store: &store,
        templates: &templates,
        now,
    };
    // panics: counted by the hook (ingest catches them)
    static PANICKED: AtomicBool = AtomicBool::new(false);
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        PANICKED.store(true, Ordering::SeqCst);
        // where it panicked, once per input: what a fixer needs first
        eprintln!("fuzz: panic: {info}");
    }));
    let mut report = FuzzReport {
        inputs,
        seeds: seeds.len(),
        panics: 0,
        hangs: 0,
        slowest_ms: 0,
        seconds: 0.0,
        crashes_written: Vec::new(),
    };
    // the seeds themselves, stored: tickets for the mutated replies to find
    for raw in &seeds {
        let _ = ingest::ingest(&ctx, raw, &Source::default(), Options::default()).await;
        if PANICKED.swap(false, Ordering::SeqCst) {
            report.panics += 1;
            let path = write_crash(crashes, "panic", raw);
            eprintln!("fuzz: a seed panicked; written to {path}");
            report.crashes_written.push(path);
        }
    }
    // hangs: a watchdog thread sees an input running too long
    let started_ms = Arc::new(AtomicU64::new(u64::MAX));
    let current: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
    let clock = Instant::now();
    {
        let (started_ms, current, dir) =
            (started_ms.clone(), current.clone(), crashes.to_path_buf());
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let s = started_ms.load(Ordering::SeqCst);
                if s != u64::MAX && clock.elapsed().as_millis() as u64 - s > HANG.as_millis() as u64
                {
                    let raw = current.lock().map(|c| c.clone()).unwrap_or_default();
                    let path = write_crash(&dir, "hang", &raw);
                    eprintln!("fuzz: an input hangs (over {HANG:?}); written to {path}");
                    std::process::exit(3);
                }
            }
        });
    }
    let mut rng = Rng::new(seed);
    let t0 = Instant::now();
    for n in 0..inputs {
        let (raw, applied) = input(&seeds, &mut rng);
        if let Ok(mut c) = current.lock() {
            c.clone_from(&raw);
        }
        let began = Instant::now();
        started_ms.store(clock.elapsed().as_millis() as u64, Ordering::SeqCst);
        let opts = Options {
            dry_run: true,
            import: false,
        };
        let _ = ingest::ingest(&ctx, &raw, &Source::default(), opts).await;
        started_ms.store(u64::MAX, Ordering::SeqCst);
        report.slowest_ms = report.slowest_ms.max(began.elapsed().as_millis());
        if PANICKED.swap(false, Ordering::SeqCst) {
            report.panics += 1;
            let path = write_crash(crashes, "panic", &raw);
            eprintln!(
                "fuzz: input {n} ({}) panicked; written to {path}",
                applied.join(", ")
            );
            report.crashes_written.push(path);
        }
        if n > 0 && n % 100_000 == 0 {
            eprintln!(
                "fuzz: {n} inputs, {} panics, {:.0} s",
                report.panics,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    std::panic::set_hook(quiet);
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// Writes a crashing input as a fixture; its path.
fn write_crash(dir: &Path, kind: &str, raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let name = format!("{kind}-{}.eml", &hex::encode(Sha256::digest(raw))[..16]);
    let path = dir.join(name);
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, raw).context("write crash");
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &[u8] = b"From: a@b.test\r\nTo: s@x.test\r\nSubject: hi\r\n\
        Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
        Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nhello\r\n--b--\r\n";

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let seeds = vec![SEED.to_vec(), b"Subject: x\r\n\r\ny".to_vec()];
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..200 {
            assert_eq!(input(&seeds, &mut a), input(&seeds, &mut b));
        }
    }

    #[test]
    fn every_mutation_changes_the_input_its_own_way() {
        let mut rng = Rng::new(1);
        for (i, name) in MUTATIONS.iter().enumerate() {
            let out = mutate(SEED, b"Subject: other\r\n\r\nbody", i, &mut rng);
            match *name {
                "truncate" => assert!(out.len() <= SEED.len()),
                "duplicate header" => assert!(out.len() > SEED.len()),
                "reorder headers" => assert_eq!(out.len(), SEED.len()),
                "nest in multipart" => {
                    assert!(out.starts_with(b"From: a@b.test\r\nSubject: nested"))
                }
                "nest as message/rfc822" => {
                    assert!(String::from_utf8_lossy(&out).contains("message/rfc822"))
                }
                "odd encodings" => assert_ne!(out, SEED, "{name}"),
                "junk bytes" => assert!(out.len() > SEED.len()),
                _ => {}
            }
        }
    }

    #[test]
    fn headers_are_split_with_their_folded_lines() {
        let (f, body) = fields(b"A: 1\r\n  more\r\nB: 2\r\n\r\nbody");
        assert_eq!(
            f,
            vec![b"A: 1\r\n  more\r\n".to_vec(), b"B: 2\r\n".to_vec()]
        );
        assert_eq!(body, b"\r\nbody");
    }
}
