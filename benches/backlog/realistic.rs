//! The "realistic mail" figure (issue 17): the real-world corpus, every
//! message once (or `BENCH_N` of them), with clamd on, in MB/s against a
//! bare client that fetches the same messages and streams every file
//! they carry to the same clamd with INSTREAM.
//!
//! The bare client mirrors Guichet's clamd adapter (src/adapters/clamd.rs):
//! `zINSTREAM\0`, 64 KiB chunks, one connection per file, one file after
//! the other. Guichet does not scan every file (a bounce's files are not
//! gated; its policy refuses some before the scan), so the baseline of the
//! figure scans the same files Guichet scanned, matched by SHA-256 with
//! what its database recorded; the bare client scanning every file part is
//! printed beside it. One extra message carries the EICAR test file: both
//! sides must refuse it as infected, so the figure cannot pass with clamd
//! silently off.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use guichet::domain::ScanOutcome;
use guichet::settings::ClamdAddress;
use mail_parser::MimeHeaders;

use super::mails::{self, BenchMail, Kind};
use super::wire::Imap;
use super::{
    Config, Desk, Rig, Store, Summary, busy_since, machine_cpu, run_guichet, secs, seed, verdict,
};

/// How long the bare client gives clamd per file.
const SCAN_TIMEOUT: Duration = Duration::from_secs(60);

/// The name of the EICAR attachment, on both sides.
const EICAR_NAME: &str = "eicar.txt";

/// Every extension the corpus's files are likely to carry, so that
/// Guichet's policy lets most of them through to clamd: the bare client
/// scans every file, and the two should do the same work.
const BROAD: &str = "allowed_extensions = \"jpg,jpeg,png,gif,tif,tiff,bmp,webp,pdf,doc,docx,xls,xlsx,odt,ods,txt,csv,json,log,xml,sql,zip,rar,gz,tar,7z,dat,svg,rtf,eml,msg,htm,html,ics,vcf,patch,diff,bin\"\nmax_files = 100\nmax_size_mb = 30";

/// The EICAR test file, split so that no source file is itself one.
fn eicar() -> Vec<u8> {
    [
        &b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$"[..],
        b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    ]
    .concat()
}

/// The messages: the corpus's, each once (up to `n`), to `support`, and
/// one customer message with the EICAR file.
fn corpus_mails(corpus: &[Vec<u8>], n: usize, support: &str, tag: &str) -> Vec<BenchMail> {
    let mut out: Vec<BenchMail> = corpus
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, raw)| BenchMail {
            raw: mails::rewrite_headers(raw, &format!("real-{tag}-{i}@bench.invalid"), support),
            sender: "corpus@customers.invalid".into(),
            kind: Kind::Corpus,
        })
        .collect();
    let customer = mails::Customer {
        address: "eicar@customers.invalid".into(),
        name: "Eicar Probe".into(),
    };
    let file = eicar();
    out.push(BenchMail {
        raw: mails::customer_mail(
            &customer,
            support,
            "The file you asked for",
            &format!("eicar-{tag}@customers.invalid"),
            None,
            "Hello, here is the file.\r\n",
            false,
            Some((EICAR_NAME, "text/plain", &file)),
            "Wed, 25 Nov 2026 10:00:00 +0000",
        ),
        sender: customer.address,
        kind: Kind::New,
    });
    out
}

/// What the bare client did.
#[derive(Default)]
struct Bare {
    messages: usize,
    /// Raw mail bytes as fetched.
    bytes: usize,
    files: usize,
    file_bytes: usize,
    infected: usize,
    eicar_found: bool,
    fetch: Duration,
    total: Duration,
}

/// Guichet's depth for messages attached to messages
/// (src/rules/attachments.rs `MAX_MESSAGE_DEPTH`).
const MAX_MESSAGE_DEPTH: usize = 8;

/// A message's file parts, in order: every attachment's decoded bytes,
/// those of attached messages instead of the message itself (as Guichet's
/// gate does); with "is the EICAR file".
fn files_of<'a>(msg: &'a mail_parser::Message<'a>, depth: usize, out: &mut Vec<(&'a [u8], bool)>) {
    use mail_parser::PartType;
    for part in msg.attachments() {
        match &part.body {
            PartType::Multipart(_) => {}
            PartType::Message(nested) if depth < MAX_MESSAGE_DEPTH => {
                files_of(nested, depth + 1, out)
            }
            _ => out.push((part.contents(), part.attachment_name() == Some(EICAR_NAME))),
        }
    }
}

async fn fetch_all(rig: &Rig, user: &str) -> Result<(Imap, Vec<u32>)> {
    let mut imap = Imap::login(&rig.host, rig.imap_port, user, &rig.password).await?;
    imap.select("INBOX").await?;
    let uids = imap.uid_search_all().await?;
    Ok((imap, uids))
}

/// LOGIN, SELECT, UID SEARCH, UID FETCH BODY.PEEK[] in batches of 200;
/// each message parsed by mail-parser and its file parts' decoded bytes
/// streamed to clamd: all of them, or those `select` (by message, by
/// file part) says.
async fn bare_fetch_and_scan(
    rig: &Rig,
    user: &str,
    clamd_port: u16,
    select: Option<&[Vec<bool>]>,
) -> Result<Bare> {
    let clamd = ClamdAddress::Tcp {
        host: rig.host.clone(),
        port: clamd_port,
    };
    let mut b = Bare::default();
    let t = Instant::now();
    let (mut imap, uids) = fetch_all(rig, user).await?;
    for chunk in uids.chunks(200) {
        let f = Instant::now();
        let bodies = imap.fetch_bodies(chunk).await?;
        b.fetch += f.elapsed();
        for body in bodies {
            let i = b.messages;
            b.messages += 1;
            b.bytes += body.len();
            let Some(msg) = mail_parser::MessageParser::default().parse(body.as_slice()) else {
                continue;
            };
            let mut files = Vec::new();
            files_of(&msg, 0, &mut files);
            for (j, (bytes, is_eicar)) in files.into_iter().enumerate() {
                if let Some(select) = select
                    && !select
                        .get(i)
                        .and_then(|s| s.get(j))
                        .copied()
                        .unwrap_or(false)
                {
                    continue;
                }
                // the protocol as Guichet speaks it (one connection per
                // file, 64 KiB chunks): what scanning costs, without the gate
                let outcome = guichet::adapters::clamd::scan(&clamd, bytes, SCAN_TIMEOUT).await;
                b.files += 1;
                b.file_bytes += bytes.len();
                match outcome {
                    ScanOutcome::Infected(_) => {
                        b.infected += 1;
                        b.eicar_found |= is_eicar;
                    }
                    ScanOutcome::Clean => {}
                    ScanOutcome::Failed(why) => bail!("clamd failed the bare client: {why}"),
                }
            }
        }
    }
    let _ = imap.command("LOGOUT").await;
    b.total = t.elapsed();
    Ok(b)
}

/// Untimed: which file parts of which message Guichet scanned, matched
/// by SHA-256 against the files its database recorded as accepted (each
/// recorded file once), and the EICAR file.
async fn guichet_selection(
    rig: &Rig,
    user: &str,
    mut accepted: HashMap<String, usize>,
) -> Result<Vec<Vec<bool>>> {
    use sha2::Digest;
    let (mut imap, uids) = fetch_all(rig, user).await?;
    let mut select = Vec::with_capacity(uids.len());
    for chunk in uids.chunks(200) {
        for body in imap.fetch_bodies(chunk).await? {
            let mut these = Vec::new();
            if let Some(msg) = mail_parser::MessageParser::default().parse(body.as_slice()) {
                let mut files = Vec::new();
                files_of(&msg, 0, &mut files);
                for (bytes, is_eicar) in files {
                    let sha = hex::encode(sha2::Sha256::digest(bytes));
                    let take = match accepted.get_mut(&sha) {
                        Some(left) if *left > 0 => {
                            *left -= 1;
                            true
                        }
                        _ => is_eicar,
                    };
                    these.push(take);
                }
            }
            select.push(these);
        }
    }
    let _ = imap.command("LOGOUT").await;
    Ok(select)
}

/// What Guichet's attachment gate did, from its database: files scanned
/// (accepted with clamd on, or refused by clamd), refused as infected,
/// not scanned (clamd unreachable), and whether the EICAR file was
/// refused as infected.
struct Gate {
    scanned: i64,
    infected: i64,
    not_scanned: i64,
    refused_by_policy: i64,
    eicar_infected: bool,
    /// SHA-256 of the accepted (so scanned clean) files, with how many.
    accepted: HashMap<String, usize>,
}

async fn gate_of(desk: &Desk) -> Result<Gate> {
    let store = Store::connect(&format!("sqlite://{}", desk.db().display())).await?;
    let Store::Sqlite(pool) = &store else {
        bail!("not SQLite")
    };
    let rows: Vec<(String, Option<String>, String, Option<String>)> =
        sqlx::query_as("SELECT verdict, reason_code, filename, sha256 FROM attachments")
            .fetch_all(pool)
            .await?;
    store.close().await;
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for (v, _, _, sha) in &rows {
        if let (true, Some(sha)) = (v == "accepted", sha) {
            *accepted.entry(sha.clone()).or_default() += 1;
        }
    }
    let code = |r: &Option<String>, c: &str| r.as_deref() == Some(c);
    Ok(Gate {
        scanned: rows
            .iter()
            .filter(|(v, r, _, _)| v == "accepted" || code(r, "infected") || code(r, "not_scanned"))
            .count() as i64,
        infected: rows
            .iter()
            .filter(|(_, r, _, _)| code(r, "infected"))
            .count() as i64,
        not_scanned: rows
            .iter()
            .filter(|(_, r, _, _)| code(r, "not_scanned"))
            .count() as i64,
        refused_by_policy: rows
            .iter()
            .filter(|(v, r, _, _)| {
                v != "accepted" && !code(r, "infected") && !code(r, "not_scanned")
            })
            .count() as i64,
        eicar_infected: rows
            .iter()
            .any(|(_, r, f, _)| f == EICAR_NAME && code(r, "infected")),
        accepted,
    })
}

/// A desk on `support` with the broad policy and clamd on.
fn desk_with_clamd(
    rig: &Rig,
    support: &str,
    agent: &str,
    smtp_port: u16,
    clamd_port: u16,
) -> Result<Desk> {
    let desk = Desk::with_smtp(rig, support, agent, BROAD, smtp_port, None)?;
    let mut text = std::fs::read_to_string(&desk.config)?;
    text.push_str(&format!(
        "\n[antivirus]\nclamd = \"tcp://{}:{clamd_port}\"\n",
        rig.host
    ));
    std::fs::write(&desk.config, text)?;
    Ok(desk)
}

/// One `guichet run --once` with clamd on; checks it fetched every
/// message and that clamd really scanned. (wall, gate, report)
async fn guichet_once(
    desk: &Desk,
    want: usize,
    what: &str,
) -> Result<(super::BinRun, Gate, serde_json::Value)> {
    let cpu = machine_cpu();
    let run = tokio::task::block_in_place(|| run_guichet(desk, &["run", "--once"]))?;
    let busy = busy_since(cpu);
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .with_context(|| format!("run --once printed {:?}", run.stdout))?;
    let gate = gate_of(desk).await?;
    println!(
        "   guichet {what}: {:.2} s ({:.2} s of CPU; {busy}); mailbox {}; mail {}; files scanned {}, infected {}, not scanned {}, refused by the policy unscanned {}; peak RSS {:.1} MB",
        secs(run.wall),
        secs(run.cpu),
        report["mailbox"],
        report["mail"],
        gate.scanned,
        gate.infected,
        gate.not_scanned,
        gate.refused_by_policy,
        run.peak_rss_kb as f64 / 1024.0
    );
    if report["mailbox"]["fetched"].as_u64() != Some(want as u64) {
        bail!(
            "guichet {what} fetched {} of {want} messages",
            report["mailbox"]["fetched"]
        );
    }
    if gate.scanned == 0 || gate.not_scanned != 0 || !gate.eicar_infected {
        bail!(
            "guichet {what}: clamd did not scan as it should ({} files scanned, {} not scanned, EICAR refused as infected: {})",
            gate.scanned,
            gate.not_scanned,
            gate.eicar_infected
        );
    }
    Ok((run, gate, report))
}

pub async fn realistic(
    cfg: &Config,
    rig: &Rig,
    prefix: &str,
    corpus: &[Vec<u8>],
    sum: &mut Summary,
) -> Result<()> {
    println!("\n== 7. Realistic mail: the corpus with clamd on, in MB/s");
    if corpus.is_empty() {
        println!(
            "   corpus not found at {}: skipped",
            mails::corpus_dir().display()
        );
        sum.add(format!(
            "realistic       skipped: no corpus at {}",
            mails::corpus_dir().display()
        ));
        return Ok(());
    }
    let clamd_port: u16 = rig
        .vars
        .get("CLAMD_PORT")
        .context("CLAMD_PORT missing from the rig's env")?
        .parse()?;
    let bare_user = format!("{prefix}-realbare@example.test");
    let alone_user = format!("{prefix}-realalone@example.test");
    let drain_user = format!("{prefix}-realdrain@example.test");
    let noav_user = format!("{prefix}-realnoav@example.test");
    let agent = format!("{prefix}-realagent@example.test");
    // the To of every message; each mailbox gets the same bytes
    let support = format!("{prefix}-real@example.test");
    let mails = corpus_mails(corpus, cfg.n, &support, prefix);
    let n = mails.len();
    let users = [&bare_user, &alone_user, &drain_user, &noav_user];
    let seeded = seed(rig, &mails, &users.map(String::as_str)).await?;
    println!(
        "   {} corpus messages and one with the EICAR file ({:.1} MB as written) seeded in four mailboxes in {:.1} s; clamd tcp://{}:{clamd_port}",
        n - 1,
        mails.iter().map(|m| m.raw.len()).sum::<usize>() as f64 / 1e6,
        secs(seeded),
        rig.host
    );
    for user in users {
        let have = rig.count(user).await?;
        if have as usize != n {
            bail!("{user} holds {have} messages, not {n}");
        }
    }
    rig.wait_postfix_idle()?;

    // the bare client, every file part
    let cpu = machine_cpu();
    let every = bare_fetch_and_scan(rig, &bare_user, clamd_port, None).await?;
    let every_busy = busy_since(cpu);
    if every.messages != n {
        bail!("bare fetch got {} of {n} messages", every.messages);
    }
    if !every.eicar_found {
        bail!("the bare client's clamd did not find the EICAR file: is clamd scanning?");
    }
    let mb = every.bytes as f64 / 1e6;
    let every_rate = mb / secs(every.total);
    println!(
        "   bare fetch + INSTREAM of every file part: {n} messages, {mb:.1} MB, {} files ({:.1} MB) scanned one connection each, {} infected; {:.2} s (fetch {:.2} s) = {every_rate:.2} MB/s; {every_busy}",
        every.files,
        every.file_bytes as f64 / 1e6,
        every.infected,
        secs(every.total),
        secs(every.fetch),
    );

    // ingest alone: the relay unreachable, nothing is sent
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let desk = desk_with_clamd(rig, &alone_user, &agent, closed_port, clamd_port)?;
    let (alone, gate, _) = guichet_once(&desk, n, "ingest alone (relay unreachable)").await?;
    let rate = mb / secs(alone.wall);

    // the bare client, the files Guichet scanned
    let select = guichet_selection(rig, &bare_user, gate.accepted.clone()).await?;
    let cpu = machine_cpu();
    let bare = bare_fetch_and_scan(rig, &bare_user, clamd_port, Some(&select)).await?;
    let bare_busy = busy_since(cpu);
    if !bare.eicar_found || bare.messages != n {
        bail!("the bare client's second pass did not find the EICAR file, or not every message");
    }
    let bare_rate = mb / secs(bare.total);
    println!(
        "   bare fetch + INSTREAM of the files guichet scanned: {} files ({:.1} MB; guichet scanned {}), {} infected; {:.2} s (fetch {:.2} s) = {bare_rate:.2} MB/s; {bare_busy}",
        bare.files,
        bare.file_bytes as f64 / 1e6,
        gate.scanned,
        bare.infected,
        secs(bare.total),
        secs(bare.fetch),
    );
    let ratio = rate / bare_rate;
    sum.add(format!(
        "realistic       corpus {} messages, {mb:.1} MB with clamd: guichet ingest {rate:.2} MB/s vs bare fetch+INSTREAM {bare_rate:.2} MB/s: {ratio:.2}x (target >= 0.80x) {}; the same {} files scanned (guichet {}), EICAR refused by both",
        n - 1,
        verdict(ratio >= 0.8),
        bare.files,
        gate.scanned,
    ));
    sum.add(format!(
        "  every file    bare fetch+INSTREAM of all {} file parts {every_rate:.2} MB/s: guichet {:.2}x (reported)",
        every.files,
        rate / every_rate
    ));

    // where the time goes: Guichet without clamd on the same messages,
    // and the bare client fetching and parsing without scanning
    let desk = Desk::with_smtp(rig, &noav_user, &agent, BROAD, closed_port, None)?;
    let noav = tokio::task::block_in_place(|| run_guichet(&desk, &["run", "--once"]))?;
    let parse_only = bare_fetch_and_scan(rig, &bare_user, clamd_port, Some(&[])).await?;
    let guichet_scans = secs(alone.wall) - secs(noav.wall);
    let bare_scans = secs(bare.total) - secs(parse_only.total);
    println!(
        "   guichet ingest alone without clamd: {:.2} s ({:.2} s of CPU); bare fetch + parse without scanning: {:.2} s",
        secs(noav.wall),
        secs(noav.cpu),
        secs(parse_only.total)
    );
    sum.add(format!(
        "  clamd's share guichet {:.2} s with clamd vs {:.2} s without ({:.2} s of CPU): scans add {guichet_scans:.2} s for {} files ({:.2} ms each); bare: {bare_scans:.2} s for {} ({:.2} ms each) beside {:.2} s of fetch + parse (reported)",
        secs(alone.wall),
        secs(noav.wall),
        secs(noav.cpu),
        gate.scanned,
        guichet_scans * 1e3 / gate.scanned.max(1) as f64,
        bare.files,
        bare_scans * 1e3 / bare.files.max(1) as f64,
        secs(parse_only.total)
    ));

    // the whole drain, with the relay
    rig.wait_postfix_idle()?;
    let desk = desk_with_clamd(rig, &drain_user, &agent, rig.smtp_port, clamd_port)?;
    let (drain, _, report) = guichet_once(&desk, n, "drain with the relay").await?;
    let delivered = rig.wait_postfix_idle()?;
    let rate = mb / secs(drain.wall);
    sum.add(format!(
        "  with relay    the same drain, {} mails sent: {rate:.2} MB/s = {:.2}x bare fetch+INSTREAM (reported); Postfix done {:.1} s later",
        report["mail"]["sent"],
        rate / bare_rate,
        secs(delivered)
    ));
    Ok(())
}
