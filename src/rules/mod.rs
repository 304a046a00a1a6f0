//! The decisions of SPEC.md as pure functions over plain data: no network,
//! no database, no clock (time is an argument). Each file is one rule set
//! and carries its own table tests.

pub mod attachments;
pub mod commands;
pub mod conversation;
pub mod delivery;
pub mod fetching;
pub mod forward;
pub mod health;
pub mod lifecycle;
pub mod oauth;
pub mod quotes;
pub mod reply_token;
pub mod retention;
pub mod robots;
pub mod senders;
pub mod stats;
pub mod threading;
pub mod webhooks;
