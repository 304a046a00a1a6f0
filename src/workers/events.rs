//! Webhook events, recorded on their ticket and queued for every endpoint
//! that wants them, in the transaction of the change that caused them.
//!
//! The outbox keeps the event itself ([`webhooks::Event`], with the ticket
//! as it was when the event happened); each endpoint's shape (JSON,
//! Discord, Slack, Teams) is rendered from it at delivery time, so an
//! endpoint whose format is changed gets the new shape for pending events.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::EventKind;
use crate::rules::webhooks::{self, Event, TicketSnapshot};
use crate::settings::Settings;
use crate::store::{NewEvent, TicketRow, Tx};

pub fn snapshot(ticket: &TicketRow) -> TicketSnapshot {
    TicketSnapshot {
        ticket_id: ticket.id,
        subject: ticket.subject.clone(),
        department: ticket.department.clone(),
        priority: ticket.priority(),
        client: ticket.client.clone(),
        status: ticket.status(),
    }
}

pub async fn emit(
    tx: &mut Tx,
    settings: &Settings,
    kind: EventKind,
    ticket: &TicketRow,
    data: Value,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let event = Event {
        id: webhooks::make_event_id(at, rand::random()),
        kind,
        occurred_at: at,
        ticket: snapshot(ticket),
        data,
    };
    let endpoints: Vec<&str> = settings
        .webhooks
        .iter()
        .filter(|w| w.wants(kind))
        .map(|w| w.url.as_str())
        .collect();
    tx.record_event(
        &NewEvent {
            event_id: &event.id,
            ticket_id: ticket.id,
            event: kind.as_str(),
            occurred_at: at,
            data: &event.data.to_string(),
            payload: &serde_json::to_string(&event)?,
        },
        &endpoints,
    )
    .await
}
