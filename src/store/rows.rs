//! Rows as the store reads and writes them: plain data, one struct per
//! table, decoded the same way from SQLite and PostgreSQL.

use chrono::{DateTime, Utc};

use crate::domain::{CloseReason, Priority, TicketStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketRow {
    pub id: i64,
    pub subject: String,
    pub department: String,
    pub priority: String,
    pub client: String,
    pub status: String,
    pub language: String,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub last_message_from: String,
    pub first_agent_reply_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<String>,
    pub linked_from: Option<i64>,
}

impl TicketRow {
    pub fn status(&self) -> TicketStatus {
        self.status.parse().unwrap_or(TicketStatus::Open)
    }
    pub fn priority(&self) -> Priority {
        self.priority.parse().unwrap_or(Priority::Normal)
    }
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.as_deref().and_then(|r| r.parse().ok())
    }
    pub fn set_status(&mut self, s: TicketStatus) {
        self.status = s.as_str().to_string();
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ParticipantRow {
    pub ticket_id: i64,
    pub address: String,
    pub role: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub ticket_id: i64,
    pub raw_id: Option<i64>,
    pub direction: String,
    pub kind: String,
    pub from_addr: String,
    pub date: DateTime<Utc>,
    pub message_id: Option<String>,
    pub rule: String,
    pub text: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttachmentRow {
    pub id: i64,
    pub message_id: i64,
    pub ticket_id: i64,
    pub filename: String,
    pub extension: Option<String>,
    pub size: i64,
    pub declared_type: String,
    pub sniffed_type: Option<String>,
    pub sha256: Option<String>,
    pub verdict: String,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub event_id: String,
    pub ticket_id: i64,
    pub event: String,
    pub occurred_at: DateTime<Utc>,
    pub data: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxMailRow {
    pub id: i64,
    pub ticket_id: Option<i64>,
    pub kind: String,
    pub envelope_from: String,
    pub recipients: String,
    pub message_id: String,
    pub raw: Vec<u8>,
    pub attempts: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: i64,
    pub event_id: String,
    pub endpoint: String,
    pub ticket_id: i64,
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i64,
}

/// An endpoint's stored health (`webhook_endpoints`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointHealthRow {
    pub endpoint: String,
    pub failures: i64,
    pub paused_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint's undelivered events: how many, and the oldest one's age.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointBacklogRow {
    pub endpoint: String,
    pub pending: i64,
    pub oldest: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookStatusRow {
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
    pub attempts: i64,
}

pub struct NewRaw<'a> {
    pub dedup_key: &'a str,
    pub raw: &'a [u8],
    pub received_at: DateTime<Utc>,
    pub mailbox: Option<&'a str>,
    pub imap_uid: Option<i64>,
    pub uid_validity: Option<i64>,
    pub problem: Option<&'a str>,
}

pub struct NewTicket<'a> {
    pub subject: &'a str,
    pub department: &'a str,
    pub client: &'a str,
    pub language: &'a str,
    pub now: DateTime<Utc>,
    pub linked_from: Option<i64>,
}

pub struct NewMessage<'a> {
    pub ticket_id: i64,
    pub raw_id: Option<i64>,
    pub direction: &'a str,
    pub kind: &'a str,
    pub from_addr: &'a str,
    pub date: DateTime<Utc>,
    pub message_id: Option<&'a str>,
    pub rule: &'a str,
    pub text: &'a str,
    pub note: Option<&'a str>,
}

pub struct NewAttachment<'a> {
    pub message_id: i64,
    pub ticket_id: i64,
    pub filename: &'a str,
    pub extension: Option<&'a str>,
    pub size: i64,
    pub declared_type: &'a str,
    pub sniffed_type: Option<&'a str>,
    pub sha256: Option<&'a str>,
    pub verdict: &'a str,
    pub reason_code: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub ticket_id: i64,
    pub event: &'a str,
    pub occurred_at: DateTime<Utc>,
    /// The event's own data, JSON.
    pub data: &'a str,
    /// The generic JSON body (the webhook payload before shaping).
    pub payload: &'a str,
}

pub struct NewMail<'a> {
    pub ticket_id: Option<i64>,
    pub kind: &'a str,
    pub envelope_from: &'a str,
    /// Comma-separated addresses.
    pub recipients: &'a str,
    pub message_id: &'a str,
    pub raw: &'a [u8],
    pub now: DateTime<Utc>,
}

/// A recipient the relay refused (table `mail_refusals`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefusalRow {
    pub id: i64,
    pub ticket_id: i64,
    pub outbox_id: Option<i64>,
    pub message_id: String,
    pub kind: String,
    pub address: String,
    pub main: bool,
    pub source: String,
    pub reply: String,
    pub refused_at: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
}

pub struct NewRefusal<'a> {
    pub ticket_id: i64,
    pub outbox_id: Option<i64>,
    pub message_id: &'a str,
    pub kind: &'a str,
    pub address: &'a str,
    /// The mail's main recipient (the customer).
    pub main: bool,
    /// `relay` (5xx at RCPT), `retries` (4xx until the retries ran out),
    /// `bounce` (a later delivery report).
    pub source: &'a str,
    pub reply: &'a str,
    pub now: DateTime<Utc>,
}

/// A mail of the outbox found by its Message-ID (a bounce's original).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SentMailRow {
    pub id: i64,
    pub ticket_id: Option<i64>,
    pub kind: String,
    pub recipients: String,
    pub message_id: String,
}
