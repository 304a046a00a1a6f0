//! Webhook events, recorded on their ticket and queued for every endpoint
//! that wants them, in the transaction of the change that caused them.
//!
//! The queued payload is the generic JSON body (SPEC "Webhooks": the seed's
//! fields at the top level, plus `id`, `event`, `occurred_at` and `data`);
//! Discord, Slack and Teams shapes are rendered from it at delivery time.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};

use crate::domain::EventKind;
use crate::settings::Settings;
use crate::store::{NewEvent, TicketRow, Tx};

/// `evt_` and 26 random base32 characters: stable across retries (it is
/// the `webhook-id`), unique across daemons.
pub fn new_event_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut rng = rand::rng();
    let tail: String = (0..26)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("evt_{tail}")
}

/// The generic JSON body of an event about `ticket` as it is now.
pub fn payload(
    event_id: &str,
    kind: EventKind,
    ticket: &TicketRow,
    data: &Value,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "id": event_id,
        "event": kind.as_str(),
        "occurred_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "ticket_id": ticket.id,
        "subject": ticket.subject,
        "department": ticket.department,
        "priority": ticket.priority,
        "client": ticket.client,
        "status": ticket.status,
        "data": data,
    })
}

pub async fn emit(
    tx: &mut Tx,
    settings: &Settings,
    kind: EventKind,
    ticket: &TicketRow,
    data: Value,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let event_id = new_event_id();
    let body = payload(&event_id, kind, ticket, &data, at);
    let endpoints: Vec<&str> = settings
        .webhooks
        .iter()
        .filter(|w| w.wants(kind))
        .map(|w| w.url.as_str())
        .collect();
    tx.record_event(
        &NewEvent {
            event_id: &event_id,
            ticket_id: ticket.id,
            event: kind.as_str(),
            occurred_at: at,
            data: &data.to_string(),
            payload: &body.to_string(),
        },
        &endpoints,
    )
    .await
}
