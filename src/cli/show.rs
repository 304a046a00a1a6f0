//! What the read-only commands print: `tickets`, `explain`, `stats`,
//! `webhook test`, `cleanup`. JSON field names are the webhook payload's
//! (`ticket_id`, `subject`, `department`, `priority`, `client`, `status`).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::adapters::file_store::temp_files;
use crate::adapters::{file_store, webhook_http::WebhookClient};
use crate::domain::CloseReason;
use crate::mail::templates::Templates;
use crate::rules::stats::{self, AttachmentFacts, DeliveryFacts, TicketFacts};
use crate::rules::webhooks;
use crate::settings::Settings;
use crate::store::{Store, TicketRow};
use crate::workers::Ctx;
use crate::workers::ingest::{self, Options, Source};

use super::{Failure, fail};

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ticket_json(t: &TicketRow, linked: Vec<i64>) -> Value {
    json!({
        "ticket_id": t.id,
        "subject": t.subject,
        "status": t.status,
        "department": t.department,
        "priority": t.priority,
        "client": t.client,
        "created_at": time(t.created_at),
        "last_activity_at": time(t.last_activity_at),
        "closed_at": t.closed_at.map(time),
        "close_reason": t.close_reason,
        "linked_tickets": linked,
    })
}

pub async fn list(store: &Store, status: Option<&str>, as_json: bool) -> Result<(), Failure> {
    if let Some(s) = status {
        s.parse::<crate::domain::TicketStatus>()
            .map_err(|e| fail(2, anyhow::anyhow!("--status: {e}")))?;
    }
    let tickets = store.tickets(status).await?;
    if as_json {
        let mut out = Vec::new();
        for t in &tickets {
            out.push(ticket_json(t, store.linked_tickets(t.id).await?));
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:>6}  {:<18} {:<8} {:<14} {:<28} subject",
        "ticket", "status", "priority", "department", "client"
    );
    for t in &tickets {
        println!(
            "{:>6}  {:<18} {:<8} {:<14} {:<28} {}",
            t.id, t.status, t.priority, t.department, t.client, t.subject
        );
    }
    println!("{} ticket(s)", tickets.len());
    Ok(())
}

pub async fn ticket_detail(store: &Store, id: i64) -> Result<Option<Value>, Failure> {
    let Some(t) = store.ticket(id).await? else {
        return Ok(None);
    };
    let attachments = store.attachments(id).await?;
    let messages: Vec<Value> = store
        .messages(id)
        .await?
        .into_iter()
        .map(|m| {
            let files: Vec<Value> = attachments
                .iter()
                .filter(|a| a.message_id == m.id)
                .map(|a| {
                    json!({"filename": a.filename, "size": a.size, "declared_type": a.declared_type,
                           "sniffed_type": a.sniffed_type, "verdict": a.verdict, "reason_code": a.reason_code,
                           "reason": a.reason, "sha256": a.sha256})
                })
                .collect();
            json!({"id": m.id, "direction": m.direction, "kind": m.kind, "from": m.from_addr, "date": time(m.date),
                   "message_id": m.message_id, "rule": m.rule, "text": m.text, "note": m.note, "signed": m.signed, "attachments": files})
        })
        .collect();
    let events: Vec<Value> = store
        .events(id)
        .await?
        .into_iter()
        .map(|e| {
            json!({"event": e.event, "id": e.event_id, "occurred_at": time(e.occurred_at),
                         "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null)})
        })
        .collect();
    let participants: Vec<Value> = store
        .participants(id)
        .await?
        .into_iter()
        .map(|p| json!({"address": p.address, "role": p.role}))
        .collect();
    // recipients the relay refused (issue 18): left out of later mail
    // until named again (`cleared_at`)
    let refused: Vec<Value> = store
        .refusals(id)
        .await?
        .into_iter()
        .map(|r| {
            json!({"address": r.address, "main": r.main, "kind": r.kind, "message_id": r.message_id,
                   "source": r.source, "reply": r.reply, "refused_at": time(r.refused_at),
                   "cleared_at": r.cleared_at.map(time)})
        })
        .collect();
    let mut v = ticket_json(&t, store.linked_tickets(id).await?);
    v["participants"] = json!(participants);
    v["refused_recipients"] = json!(refused);
    v["messages"] = json!(messages);
    v["events"] = json!(events);
    Ok(Some(v))
}

pub async fn show(store: &Store, id: i64, as_json: bool) -> Result<(), Failure> {
    let Some(v) = ticket_detail(store, id).await? else {
        return Err(fail(3, anyhow::anyhow!("no ticket {id}")));
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "Ticket {} · {} · priority {} · {}",
        v["ticket_id"],
        v["status"].as_str().unwrap_or(""),
        v["priority"].as_str().unwrap_or(""),
        v["department"].as_str().unwrap_or("")
    );
    println!("Subject: {}", v["subject"].as_str().unwrap_or(""));
    println!("Client:  {}", v["client"].as_str().unwrap_or(""));
    println!(
        "Opened:  {}   Closed: {}",
        v["created_at"].as_str().unwrap_or(""),
        v["closed_at"].as_str().unwrap_or("-")
    );
    if let Some(l) = v["linked_tickets"].as_array().filter(|l| !l.is_empty()) {
        println!(
            "Linked:  {}",
            l.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for m in v["messages"].as_array().into_iter().flatten() {
        println!(
            "\n--- #{} {} {} from {} at {} (rule {})",
            m["id"],
            m["direction"].as_str().unwrap_or(""),
            m["kind"].as_str().unwrap_or(""),
            m["from"].as_str().unwrap_or(""),
            m["date"].as_str().unwrap_or(""),
            m["rule"].as_str().unwrap_or("")
        );
        if let Some(n) = m["note"].as_str() {
            println!("    note: {n}");
        }
        for a in m["attachments"].as_array().into_iter().flatten() {
            println!(
                "    file {} ({} bytes, declared {}, sniffed {}): {}{}",
                a["filename"].as_str().unwrap_or(""),
                a["size"],
                a["declared_type"].as_str().unwrap_or("?"),
                a["sniffed_type"].as_str().unwrap_or("?"),
                a["verdict"].as_str().unwrap_or(""),
                a["reason"]
                    .as_str()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default()
            );
        }
        for line in m["text"].as_str().unwrap_or("").lines().take(40) {
            println!("    {line}");
        }
    }
    for r in v["refused_recipients"].as_array().into_iter().flatten() {
        println!(
            "Not delivered: {} ({} mail, {}) at {}{}: {}",
            r["address"].as_str().unwrap_or(""),
            r["kind"].as_str().unwrap_or(""),
            r["source"].as_str().unwrap_or(""),
            r["refused_at"].as_str().unwrap_or(""),
            if r["cleared_at"].is_null() {
                ""
            } else {
                ", named again since"
            },
            r["reply"].as_str().unwrap_or("")
        );
    }
    println!("\nEvents:");
    for e in v["events"].as_array().into_iter().flatten() {
        println!(
            "  {} {} {}",
            e["occurred_at"].as_str().unwrap_or(""),
            e["event"].as_str().unwrap_or(""),
            e["data"]
        );
    }
    Ok(())
}

pub async fn problems(store: &Store, as_json: bool) -> Result<(), Failure> {
    let rows = store.problem_messages().await?;
    if as_json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(id, p, at)| json!({"raw_id": id, "problem": p, "received_at": time(*at)}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (id, p, at) in &rows {
            println!("raw {id} received {}: {p}", time(*at));
        }
        println!("{} message(s) outside any ticket", rows.len());
    }
    Ok(())
}

pub async fn explain(
    s: &Settings,
    store: &Store,
    raw: &[u8],
    as_json: bool,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let templates = Templates::load(s.helpdesk.templates_dir.as_deref())?;
    let ctx = Ctx {
        settings: s,
        store,
        templates: &templates,
        now,
    };
    let (outcome, trace) = ingest::ingest(
        &ctx,
        raw,
        &Source::default(),
        Options {
            dry_run: true,
            import: false,
        },
    )
    .await?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"outcome": outcome, "decisions": trace.steps}))?
        );
    } else {
        for step in &trace.steps {
            println!("{:<12} {}", step.stage, step.decision);
        }
        println!("{:<12} {}", "outcome", serde_json::to_string(&outcome)?);
        println!("(dry run: nothing was stored or sent)");
    }
    Ok(())
}

pub async fn webhook_test(s: &Settings, url: Option<&str>) -> Result<(), Failure> {
    let event = webhooks::demo_event(Utc::now());
    /// One endpoint to try: URL, shape, secret, and its own client
    /// (deadline, CA file).
    type Target = (
        String,
        crate::settings::WebhookFormat,
        Option<String>,
        WebhookClient,
    );
    let targets: Vec<Target> = match url {
        Some(u) => vec![(
            u.to_string(),
            crate::settings::WebhookFormat::Auto,
            None,
            WebhookClient::new().map_err(anyhow::Error::msg)?,
        )],
        None => s
            .webhooks
            .iter()
            .map(|w| {
                let client = WebhookClient::for_endpoint(
                    std::time::Duration::from_secs(w.timeout_seconds),
                    w.ca_file.as_deref(),
                )
                .map_err(anyhow::Error::msg)?;
                anyhow::Ok((
                    w.url.clone(),
                    w.format,
                    w.secret.as_ref().map(|x| x.expose().to_string()),
                    client,
                ))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if targets.is_empty() {
        return Err(fail(
            2,
            anyhow::anyhow!("no [[webhooks]] in the settings and no --url given"),
        ));
    }
    let mut failed = false;
    for (i, (target, format, secret, client)) in targets.into_iter().enumerate() {
        // the path may hold the endpoint's token (Discord, Slack): not shown
        let shown = match url {
            Some(_) => webhooks::display_url(&target),
            None => format!("webhooks[{i}] {}", webhooks::display_url(&target)),
        };
        let format = webhooks::resolve_format(format, &target);
        let body = serde_json::to_vec(&webhooks::render(
            format,
            &event,
            s.helpdesk.ticket_url.as_deref(),
        ))?;
        // signed at the moment of sending
        let headers =
            webhooks::headers(&event.id, Utc::now().timestamp(), &body, secret.as_deref());
        match client.post(&target, &body, &headers).await {
            Ok(a) => {
                let ok = (200..300).contains(&a.status);
                failed |= !ok;
                println!(
                    "{shown} ({format:?}): HTTP {} in {} ms{}\n{}",
                    a.status,
                    a.latency.as_millis(),
                    if ok { "" } else { " FAILED" },
                    a.body_excerpt
                );
            }
            Err(e) => {
                failed = true;
                println!("{shown} ({format:?}): FAILED: {e}");
            }
        }
    }
    if failed {
        Err(fail(
            1,
            anyhow::anyhow!("at least one endpoint did not accept the test event"),
        ))
    } else {
        Ok(())
    }
}

pub async fn stats(
    store: &Store,
    s: &Settings,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    as_json: bool,
) -> Result<(), Failure> {
    let events = store.all_events(None).await?;
    // one person, one customer, whichever address they wrote from
    let keys: std::collections::HashMap<String, String> =
        store.customer_keys().await?.into_iter().collect();
    let tickets: Vec<TicketFacts> = store
        .all_tickets_since(None)
        .await?
        .into_iter()
        .map(|t| {
            let mine = events.iter().filter(|e| e.ticket_id == t.id);
            let closings = mine
                .clone()
                .filter(|e| e.event == "ticket.closed")
                .filter_map(|e| {
                    let data: Value = serde_json::from_str(&e.data).ok()?;
                    let reason: CloseReason = data["reason"].as_str()?.parse().ok()?;
                    Some((e.occurred_at, reason))
                })
                .collect();
            let reopenings = mine
                .filter(|e| e.event == "ticket.reopened")
                .map(|e| e.occurred_at)
                .collect();
            let client = t.client.to_lowercase();
            TicketFacts {
                ticket_id: t.id,
                customer: Some(keys.get(&client).cloned().unwrap_or(client)),
                created_at: t.created_at,
                first_agent_reply_at: t.first_agent_reply_at,
                closed_at: t.closed_at,
                close_reason: t.close_reason(),
                closings,
                reopenings,
            }
        })
        .collect();
    let attachments: Vec<AttachmentFacts> = store
        .all_attachments(None)
        .await?
        .into_iter()
        .map(|a| AttachmentFacts {
            at: a.created_at,
            file_type: a
                .extension
                .clone()
                .unwrap_or_else(|| a.sniffed_type.clone().unwrap_or_default()),
            bytes: a.size.max(0) as u64,
            refusal_code: a.reason_code.clone(),
        })
        .collect();
    let deliveries: Vec<DeliveryFacts> = store
        .all_webhook_deliveries(None)
        .await?
        .into_iter()
        .map(|d| DeliveryFacts {
            at: d.created_at,
            delivered: d.delivered_at.is_some(),
            dead: d.dead_at.is_some(),
            attempts: d.attempts.max(0) as u32,
        })
        .collect();
    // tickets removed by retention or an erasure left their anonymous facts
    let (tickets, attachments, deliveries) =
        with_archived(store, tickets, attachments, deliveries).await?;
    let result = stats::compute(since, now, &tickets, &attachments, &deliveries);
    // agents' addresses the relay refused (issue 18): the admin's to fix
    let refused_agents = store.refused_agent_addresses().await?;
    // the outboxes now, whatever the period (`guichet outbox` lists them)
    let queues = store.queue_depth().await?;
    if as_json {
        let mut v = serde_json::to_value(&result)?;
        v["queues"] = serde_json::to_value(&queues)?;
        if !refused_agents.is_empty() {
            v["refused_agent_addresses"] =
                json!(refused_agents
                .iter()
                .map(|(a, n, reply)| json!({"address": a, "refusals": n, "last_reply": reply}))
                .collect::<Vec<_>>());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", stats::render_text(&result, s.helpdesk.language));
        println!(
            "Outbox now: {} mail waiting, {} failed; {} webhook deliveries waiting, {} dead (`guichet outbox`)",
            queues.mail_pending, queues.mail_failed, queues.webhooks_pending, queues.webhooks_dead
        );
        for (a, n, reply) in &refused_agents {
            println!(
                "Agent address refused by the relay ({n}×, check [[departments]] agents): {a}: {reply}"
            );
        }
    }
    Ok(())
}

pub async fn cleanup(
    store: &Store,
    s: &Settings,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<(), Failure> {
    // Temporary files of writes that died, whatever the retention. Their
    // age is read against the real clock, not `--now`: a simulated date
    // must never make a write in progress look abandoned.
    let temps = file_store::remove_stale_temps(
        &s.attachments.storage_dir,
        std::time::SystemTime::now(),
        dry_run,
    )
    .map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "clearing temporary files under {}",
            s.attachments.storage_dir.display()
        ))
    })?;
    for path in &temps {
        println!(
            "{} {}",
            if dry_run { "would remove" } else { "removed" },
            path.display()
        );
    }
    println!(
        "{} stale temporary file(s) {} (older than {} minutes)",
        temps.len(),
        if dry_run {
            "would be removed"
        } else {
            "removed"
        },
        temp_files::STALE_AFTER.as_secs() / 60
    );
    let days = s.attachments.retention_days;
    if days == 0 {
        println!("attachments.retention_days = 0: files are kept forever, nothing to do");
        return Ok(());
    }
    let before = now - Duration::days(i64::from(days));
    let dir = &s.attachments.storage_dir;
    let (mut removed, mut kept, mut bytes) = (0usize, 0usize, 0u64);
    for (sha, still_needed) in store.stored_files(before).await? {
        if still_needed {
            kept += 1;
            continue;
        }
        let path = file_store::path_of(dir, &sha)?;
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        bytes += meta.len();
        removed += 1;
        if !dry_run {
            file_store::remove(dir, &sha)?;
        }
        println!(
            "{} {}",
            if dry_run { "would remove" } else { "removed" },
            path.display()
        );
    }
    println!(
        "{removed} file(s), {bytes} bytes {} (tickets closed before {}); {kept} file(s) still referenced kept",
        if dry_run {
            "would be removed"
        } else {
            "removed"
        },
        time(before)
    );
    Ok(())
}

/// The facts of removed tickets (`stats_*` tables, issue 24) added to the
/// live ones: the figures of a past period stay what they were.
async fn with_archived(
    store: &Store,
    mut tickets: Vec<TicketFacts>,
    mut attachments: Vec<AttachmentFacts>,
    mut deliveries: Vec<DeliveryFacts>,
) -> anyhow::Result<(Vec<TicketFacts>, Vec<AttachmentFacts>, Vec<DeliveryFacts>)> {
    for (i, t) in store.archived_tickets().await?.into_iter().enumerate() {
        let closings: Vec<(DateTime<Utc>, String)> =
            serde_json::from_str(&t.closings).unwrap_or_default();
        let reopenings: Vec<DateTime<Utc>> =
            serde_json::from_str(&t.reopenings).unwrap_or_default();
        tickets.push(TicketFacts {
            // no id is kept; these stand apart from every live ticket
            ticket_id: -(i as i64) - 1,
            customer: None,
            created_at: t.created_at,
            first_agent_reply_at: t.first_agent_reply_at,
            closed_at: t.closed_at,
            close_reason: t.close_reason.as_deref().and_then(|r| r.parse().ok()),
            closings: closings
                .into_iter()
                .filter_map(|(at, r)| Some((at, r.parse::<CloseReason>().ok()?)))
                .collect(),
            reopenings,
        });
    }
    attachments.extend(
        store
            .archived_attachments()
            .await?
            .into_iter()
            .map(|a| AttachmentFacts {
                at: a.at,
                file_type: a.file_type,
                bytes: a.bytes.max(0) as u64,
                refusal_code: a.refusal_code,
            }),
    );
    deliveries.extend(
        store
            .archived_deliveries()
            .await?
            .into_iter()
            .map(|d| DeliveryFacts {
                at: d.at,
                delivered: d.delivered,
                dead: d.dead,
                attempts: d.attempts.max(0) as u32,
            }),
    );
    Ok((tickets, attachments, deliveries))
}
