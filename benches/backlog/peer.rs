//! Phase `peer` (issue 7: "at least 100x django-helpdesk"): the peer
//! measured in the same run, against the same servers. The same backlog
//! mix is seeded into two fresh mailboxes; django-helpdesk 2.6's own
//! `manage.py get_email` (acknowledgements on, SQLite, Django's SMTP
//! backend, set up by `scripts/peer/django_helpdesk.sh`) drains one, and
//! `guichet run --once` the other. Both rates and their ratio go to the
//! summary. When the peer cannot be installed or run, issue 7's figure
//! (35 msg/s) stands in, and the output says so.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{
    Desk, PEER_MSG_PER_S, Rig, Summary, busy_since, machine_cpu, mails, mix, run_guichet, secs,
    seed, verdict,
};

/// The peer's rate used by every "x django-helpdesk" figure of the run.
pub struct PeerRate {
    pub msg_per_s: f64,
    pub measured: bool,
}

impl PeerRate {
    /// Issue 7's figure, when the peer was not measured in this run.
    pub fn fallback() -> PeerRate {
        PeerRate {
            msg_per_s: PEER_MSG_PER_S,
            measured: false,
        }
    }

    pub fn label(&self) -> String {
        if self.measured {
            format!(
                "django-helpdesk's {:.1} msg/s measured in this run",
                self.msg_per_s
            )
        } else {
            format!(
                "django-helpdesk's ~{:.0} msg/s (issue 7's figure, NOT measured in this run)",
                self.msg_per_s
            )
        }
    }
}

/// What `django_helpdesk.sh` printed (its one line of JSON).
struct PeerRun {
    before: u64,
    after: u64,
    tickets: u64,
    followups: u64,
    sent: u64,
    wall: f64,
    versions: String,
}

fn run_script(rig: &Rig, user: &str, agent: Option<&str>) -> Result<PeerRun> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/peer/django_helpdesk.sh"
    );
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .args(["--host", &rig.host])
        .args(["--imap-port", &rig.imap_port.to_string()])
        .args(["--smtp-port", &rig.smtp_port.to_string()])
        .args(["--user", user])
        .env("PEER_PASSWORD", &rig.password)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(agent) = agent {
        cmd.args(["--agent", agent]);
    }
    let out = cmd.output().context("cannot start bash")?;
    if !out.status.success() {
        bail!("{script} failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("{script} printed {stdout:?}"))?;
    let num = |k: &str| {
        v[k].as_u64()
            .with_context(|| format!("{k} missing from {line}"))
    };
    Ok(PeerRun {
        before: num("mailbox_before")?,
        after: num("mailbox_after")?,
        tickets: num("tickets")?,
        followups: num("followups")?,
        sent: num("mails_sent")?,
        wall: v["wall_seconds"]
            .as_f64()
            .with_context(|| format!("wall_seconds missing from {line}"))?,
        versions: format!(
            "django-helpdesk {}, Django {}, Python {}",
            v["django_helpdesk"].as_str().unwrap_or("?"),
            v["django"].as_str().unwrap_or("?"),
            v["python"].as_str().unwrap_or("?")
        ),
    })
}

pub async fn peer(
    rig: &Rig,
    prefix: &str,
    corpus: &[Vec<u8>],
    sum: &mut Summary,
) -> Result<PeerRate> {
    let n = std::env::var("BENCH_PEER_N")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(500usize);
    // BENCH_PEER_AGENT_COPIES=1: the peer also copies an agent on new
    // tickets and updates (new_ticket_cc, updated_ticket_cc), as Guichet
    // does; by default it only acknowledges (issue 7's set-up)
    let agent_copies = std::env::var("BENCH_PEER_AGENT_COPIES").is_ok_and(|v| v == "1");
    let peer_user = format!("{prefix}-peerdesk@example.test");
    let peer_agent = format!("{prefix}-peeragent@example.test");
    let desk_user = format!("{prefix}-peerguichet@example.test");
    let desk_agent = format!("{prefix}-peerguichetagent@example.test");
    let catchall = format!(
        "catchall@{}",
        rig.vars
            .get("MAIL_DOMAIN")
            .map_or("example.test", String::as_str)
    );
    // the same messages (same Message-IDs, same mix) but each addressed to
    // its own desk, so that both see mail to their support address
    let for_peer = mails::backlog(n, &peer_user, corpus, prefix);
    let for_guichet = mails::backlog(n, &desk_user, corpus, prefix);
    println!(
        "\n== 0. Peer: django-helpdesk get_email vs guichet run --once on the same {n} messages ({}); peer {}",
        mix(&for_peer),
        if agent_copies {
            "acknowledges and copies an agent"
        } else {
            "acknowledges (BENCH_PEER_AGENT_COPIES=1 adds agent copies)"
        }
    );
    // both keep their SQLite file (and stored attachments) in a fresh
    // directory under the same TMPDIR: commits cost the same fsync
    let tmp = std::env::temp_dir();
    println!(
        "   both databases under {} ({}; TMPDIR moves both)",
        tmp.display(),
        if tmp.starts_with("/dev/shm") {
            "tmpfs"
        } else {
            "disk, unless mounted otherwise"
        }
    );
    seed(rig, &for_peer, &[&peer_user]).await?;
    seed(rig, &for_guichet, &[&desk_user]).await?;
    for user in [&peer_user, &desk_user] {
        let have = rig.count(user).await?;
        if have as usize != n {
            bail!("{user} holds {have} messages, not {n}");
        }
    }
    rig.wait_postfix_idle()?;

    // the peer: acknowledgements counted where they land (every address
    // outside the rig's domain is delivered to its catchall mailbox)
    let catchall_before = rig.count(&catchall).await?;
    let cpu = machine_cpu();
    let peer_run = tokio::task::block_in_place(|| {
        run_script(rig, &peer_user, agent_copies.then_some(peer_agent.as_str()))
    });
    let peer_busy = busy_since(cpu);
    let measured = match peer_run {
        Ok(p) => {
            rig.wait_postfix_idle()?;
            let acks = rig.count(&catchall).await? - catchall_before;
            let copies = if agent_copies {
                rig.count(&peer_agent).await?
            } else {
                0
            };
            let handled = p.before.saturating_sub(p.after);
            println!(
                "   django-helpdesk ({}): {} messages in the mailbox, {handled} handled in {:.2} s = {:.1} msg/s ({peer_busy}); {} tickets, {} follow-ups; {} mails sent, of which {acks} reached customers' mailboxes{}",
                p.versions,
                p.before,
                p.wall,
                handled as f64 / p.wall,
                p.tickets,
                p.followups,
                p.sent,
                if agent_copies {
                    format!(" and {copies} the agent's")
                } else {
                    String::new()
                }
            );
            if p.before != n as u64 {
                bail!("the peer saw {} messages, not {n}", p.before);
            }
            if p.after > 0 {
                println!(
                    "   WARNING: django-helpdesk left {} of {n} messages in the mailbox (it could not handle them); its rate counts only those it handled",
                    p.after
                );
            }
            if acks == 0 {
                println!(
                    "   WARNING: no acknowledgement from django-helpdesk reached a customer: acknowledgements are OFF, the comparison is not the one of issue 7"
                );
            }
            Some((handled, p.wall))
        }
        Err(e) => {
            println!(
                "   !!!!! the peer could not be measured: {e:#}\n   !!!!! FALLING BACK to issue 7's figure of {PEER_MSG_PER_S} msg/s for django-helpdesk: every \"x django-helpdesk\" ratio below is NOT measured"
            );
            None
        }
    };

    // Guichet on the same messages
    let catchall_before = rig.count(&catchall).await?;
    let desk = Desk::new(rig, &desk_user, &desk_agent, "")?;
    let cpu = machine_cpu();
    let run = tokio::task::block_in_place(|| run_guichet(&desk, &["run", "--once"]))?;
    let run_busy = busy_since(cpu);
    rig.wait_postfix_idle()?;
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .with_context(|| format!("run --once printed {:?}", run.stdout))?;
    let acks = rig.count(&catchall).await? - catchall_before;
    let copies = rig.count(&desk_agent).await?;
    let mb = &report["mailbox"];
    if mb["fetched"].as_u64() != Some(n as u64) {
        bail!("guichet handled {} of {n} messages", mb["fetched"]);
    }
    let guichet_rate = n as f64 / secs(run.wall);
    println!(
        "   guichet run --once: {n} messages in {:.2} s = {guichet_rate:.0} msg/s ({:.2} s of CPU; {run_busy}); mailbox {mb}; mail {}; timings {}; {acks} reached customers' mailboxes and {copies} the agent's",
        secs(run.wall),
        secs(run.cpu),
        report["mail"],
        report["timings"],
    );

    let rate = match measured {
        Some((handled, wall)) if handled > 0 => PeerRate {
            msg_per_s: handled as f64 / wall,
            measured: true,
        },
        Some(_) => {
            println!(
                "   !!!!! django-helpdesk handled no message: FALLING BACK to issue 7's figure of {PEER_MSG_PER_S} msg/s"
            );
            PeerRate::fallback()
        }
        None => PeerRate::fallback(),
    };
    let ratio = guichet_rate / rate.msg_per_s;
    sum.add(format!(
        "peer            {n} messages: guichet {guichet_rate:.0} msg/s vs {}: Guichet {ratio:.1} times django-helpdesk, target >= 100x {}",
        rate.label(),
        verdict(ratio >= 100.0)
    ));
    Ok(rate)
}
