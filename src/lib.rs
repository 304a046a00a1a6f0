//! Guichet: an email-gateway helpdesk daemon.
//!
//! Customers write to a support address; Guichet threads their mail into
//! tickets, checks their attachments, answers them, relays agents' replies
//! from their own mail client, closes idle tickets, and tells chat channels
//! through webhooks. `SPEC.md`'s rules live in [`rules`], as pure functions
//! over plain data; everything that talks to the world lives in [`adapters`]
//! and [`store`]; [`workers`] glue the two together.
//!
//! # Layout
//! - [`domain`]: parsed values (addresses, ticket ids, statuses, events).
//! - [`settings`]: `guichet.toml` → checked [`settings::Settings`]; presets.
//! - [`rules`]: the decisions of SPEC.md, no I/O: threading, reply tokens,
//!   sender trust, robots and bounces, quote stripping, agent commands,
//!   attachment policy, lifecycle, webhook shapes and signing, retries.
//! - [`mail`]: inbound bytes → facts, outgoing facts → bytes, templates.
//! - [`adapters`]: IMAP in, SMTP out, clamd, attachment files, webhook HTTP.
//! - [`store`]: SQLite or PostgreSQL: tickets, raw mail, events, outboxes.
//! - [`workers`]: ingest, notify, deliver, sweep, and the daemon's loops.
//! - [`cli`]: the `guichet` command line.

pub mod adapters;
pub mod cli;
pub mod domain;
pub mod mail;
pub mod rules;
pub mod settings;
pub mod store;
pub mod workers;
