//! `guichet customers export|erase ADDRESS` (issue 24): one person's
//! data, as the GDPR's articles 15, 17 and 20 ask.
//!
//! - export: a folder with `export.json` (their tickets whole: messages,
//!   files' verdicts, events; in other people's tickets only what they
//!   wrote), `mail/` (the original mails they sent) and `files/` (the
//!   files they sent that were kept).
//! - erase: their tickets removed whole; in other tickets their messages
//!   replaced by a placeholder, their address taken off; their files, raw
//!   mail, queued mail and webhook payloads deleted; an audit record and a
//!   `customer.erased` webhook with counts, never who. Without `--yes`
//!   (or with `--dry-run`) the same erasure runs and is rolled back: it
//!   shows what would go.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::adapters::file_store;
use crate::domain::{EmailAddress, EventKind};
use crate::rules::webhooks::{SystemEvent, make_event_id, system::NO_TICKET};
use crate::settings::Settings;
use crate::store::{Erased, Merged, Store};

use super::{Failure, fail, show};

/// What their messages in other people's tickets become.
pub const PLACEHOLDER: &str = "[message removed at its author's request]";

fn address_of(text: &str) -> Result<String, Failure> {
    EmailAddress::parse(text)
        .map(|a| a.as_str().to_ascii_lowercase())
        .map_err(|e| fail(2, anyhow::anyhow!(e)))
}

/// A file name safe in one folder: letters, digits, `.-_`, the rest `_`.
fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_start_matches('.').chars().take(100).collect()
}

/// `customers merge ADDRESS OTHER`: one person, two addresses (issue 20).
pub async fn merge(store: &Store, address: &str, other: &str) -> Result<(), Failure> {
    let (address, other) = (address_of(address)?, address_of(other)?);
    let mut tx = store.begin().await?;
    let merged = tx
        .merge_customers(&address, &other, "guichet customers merge", Utc::now())
        .await?;
    tx.commit().await?;
    match merged {
        Merged::Linked { key, moved } => println!(
            "{other} is now an address of the customer {key} ({moved} address{} moved)",
            if moved == 1 { "" } else { "es" }
        ),
        Merged::AlreadyOne { key } => {
            println!("{address} and {other} were one customer already ({key})")
        }
    }
    addresses(store, &address).await
}

/// `customers split ADDRESS`.
pub async fn split(store: &Store, address: &str) -> Result<(), Failure> {
    let address = address_of(address)?;
    let mut tx = store.begin().await?;
    let changed = tx.split_customer(&address).await?;
    tx.commit().await?;
    if changed {
        println!("{address} stands for itself again");
    } else {
        println!("{address} was not merged with any other address");
    }
    Ok(())
}

/// `customers addresses ADDRESS`: the person's addresses, their key first.
pub async fn addresses(store: &Store, address: &str) -> Result<(), Failure> {
    let address = address_of(address)?;
    for a in store.addresses_of_customer(&address).await? {
        println!("{a}");
    }
    Ok(())
}

pub async fn export(
    store: &Store,
    s: &Settings,
    address: &str,
    output: &Path,
) -> Result<(), Failure> {
    let address = address_of(address)?;
    if output.exists() && std::fs::read_dir(output).map(|mut d| d.next().is_some())? {
        return Err(fail(
            1,
            anyhow::anyhow!("{} exists and is not empty", output.display()),
        ));
    }
    std::fs::create_dir_all(output.join("mail"))
        .and_then(|()| std::fs::create_dir_all(output.join("files")))
        .with_context(|| format!("cannot create {}", output.display()))?;
    let mut tickets = Vec::new();
    let mut mails = 0;
    let mut files = 0;
    let own = store.tickets_of_customer(&address).await?;
    let joined = store.tickets_joined_by(&address).await?;
    for (id, whole) in own
        .iter()
        .map(|i| (*i, true))
        .chain(joined.iter().map(|i| (*i, false)))
    {
        let Some(mut v) = show::ticket_detail(store, id).await? else {
            continue;
        };
        if !whole {
            // someone else's ticket: only what they wrote
            let theirs: Vec<Value> = v["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| {
                    m["from"]
                        .as_str()
                        .is_some_and(|f| f.eq_ignore_ascii_case(&address))
                })
                .cloned()
                .collect();
            v = json!({"ticket_id": id, "role": "participant", "messages": theirs});
        } else {
            v["role"] = json!("customer");
        }
        // the originals of what they sent, and their files
        let rows = store.messages(id).await?;
        let attachments = store.attachments(id).await?;
        for m in rows
            .iter()
            .filter(|m| m.from_addr.eq_ignore_ascii_case(&address))
        {
            if let Some(raw_id) = m.raw_id
                && let Some(bytes) = store.raw_message(raw_id).await?
                && !bytes.is_empty()
            {
                std::fs::write(output.join("mail").join(format!("{}.eml", m.id)), bytes)?;
                mails += 1;
            }
            for a in attachments.iter().filter(|a| a.message_id == m.id) {
                let Some(sha) = &a.sha256 else { continue };
                let Ok(path) = file_store::path_of(&s.attachments.storage_dir, sha) else {
                    continue;
                };
                if path.is_file() {
                    let name = format!("{}-{}", a.id, safe_name(&a.filename));
                    std::fs::copy(&path, output.join("files").join(name))?;
                    files += 1;
                }
            }
        }
        tickets.push(v);
    }
    // the person's other addresses (merged): each is exported on its own
    let other_addresses: Vec<String> = store
        .addresses_of_customer(&address)
        .await?
        .into_iter()
        .filter(|a| *a != address)
        .collect();
    let doc = json!({
        "address": address,
        "other_addresses": other_addresses,
        "exported_at": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        "tickets": tickets,
        "original_mails": "mail/<message id>.eml",
        "files": "files/<attachment id>-<name>",
    });
    std::fs::write(
        output.join("export.json"),
        serde_json::to_string_pretty(&doc)?,
    )?;
    println!(
        "{}",
        json!({"tickets": tickets.len(), "mails": mails, "files": files, "output": output.display().to_string()})
    );
    Ok(())
}

pub async fn erase(
    store: &Store,
    s: &Settings,
    address: &str,
    apply: bool,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let address = address_of(address)?;
    let own = store.tickets_of_customer(&address).await?;
    // mail that could not be placed in a ticket and names them
    let needle = address.as_bytes();
    let unplaced: Vec<i64> = store
        .unplaced_raw_mails()
        .await?
        .into_iter()
        .filter(|(_, raw)| {
            raw.to_ascii_lowercase()
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .map(|(id, _)| id)
        .collect();
    let mut erased = Erased::default();
    let mut tx = store.begin().await?;
    let mut files = Vec::new();
    for chunk in own.chunks(64) {
        let (removed, f) = tx.remove_tickets(chunk).await?;
        erased.removed.add(removed);
        files.extend(f);
    }
    files.extend(
        tx.erase_traces(&address, PLACEHOLDER, &unplaced, &mut erased)
            .await?,
    );
    // the address is no longer known as anyone's other address
    tx.split_customer(&address).await?;
    files.sort_unstable();
    files.dedup();
    // flat counts: the audit record, the webhook and the dry run's answer
    let r = erased.removed;
    let counts = json!({
        "tickets": r.tickets,
        "messages": r.messages,
        "placeholders": erased.placeholders,
        "raw_mails": r.raw_mails + erased.raw_mails,
        "files": files.len(),
        "queued_mails": r.queued_mails + erased.queued_mails,
        "mail_bodies": erased.mail_bodies,
        "webhook_payloads": r.webhook_payloads + erased.webhook_payloads,
        "participations": erased.participations,
        "events": erased.events,
        "records": erased.records,
    });
    if !apply {
        drop(tx); // rolled back
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"dry_run": true, "would_erase": counts}))?
        );
        println!("nothing was changed; run again with --yes to erase");
        return Ok(());
    }
    // the audit record and its webhook: when and how much, never who
    let event = SystemEvent {
        id: make_event_id(now, rand::random()),
        kind: EventKind::CustomerErased,
        occurred_at: now,
        data: counts.clone(),
    };
    let data = counts.to_string();
    tx.record_audit(EventKind::CustomerErased.as_str(), now, &data)
        .await?;
    let endpoints: Vec<&str> = s
        .webhooks
        .iter()
        .filter(|w| w.wants(EventKind::CustomerErased))
        .map(|w| w.url.as_str())
        .collect();
    tx.queue_audit_webhook(
        &event.id,
        &endpoints,
        NO_TICKET,
        &serde_json::to_string(&event)?,
        now,
    )
    .await?;
    tx.commit().await?;
    let mut removed_files = 0;
    for sha in files {
        if !store.file_referenced(&sha).await?
            && file_store::remove(&s.attachments.storage_dir, &sha)?
        {
            removed_files += 1;
        }
    }
    let reclaimed = store.reclaim_space().await?;
    tracing::info!(%data, "customer.erased");
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({"erased": counts, "files_removed": removed_files,
            "space": reclaimed}))?
    );
    Ok(())
}
