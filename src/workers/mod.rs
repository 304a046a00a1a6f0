//! The glue: each worker loads plain data from the store, asks the rules,
//! and writes the outcome (ticket changes, outgoing mail, events) in one
//! transaction. Sending happens later, from the outboxes.
//!
//! - [`ingest`]: one inbound message → ticket, replies, events.
//! - [`notify`]: outgoing mail (acknowledgements, copies, notices) queued in
//!   the mail outbox.
//! - [`events`]: webhook events queued in the webhook outbox.
//! - [`deliver`]: the outboxes drained to SMTP and to webhook endpoints.
//! - [`sweep`]: auto-close of idle tickets.
//! - [`retention`]: `[retention]`'s removals, in batches, and the space
//!   given back.
//! - [`mailbox_pass`]: one pass over the mailbox (first contact, catch-up,
//!   batches), the dry run and `import`.
//! - [`daemon`]: the IMAP loop, the timers, reload and shutdown.

use chrono::{DateTime, Utc};

use crate::mail::templates::Templates;
use crate::settings::Settings;
use crate::store::Store;

pub mod events;
pub mod ingest;
pub mod notify;

/// What every worker needs for one pass: the settings in force, the store,
/// the templates, and the clock (set by `--now` in tests and dry runs).
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub store: &'a Store,
    pub templates: &'a Templates,
    pub now: DateTime<Utc>,
}
pub mod daemon;
pub mod deliver;
pub mod fuzz;
pub mod health;
pub mod mailbox_pass;
pub mod metrics;
pub mod oauth;
pub mod retention;
pub mod sweep;
pub mod undelivered;
pub mod watchdog;
