//! The edges that talk to the world: each turns a protocol into plain data
//! for [`crate::rules`] and [`crate::workers`], and decides nothing itself.

pub mod clamd;
pub mod file_store;
pub mod health_http;
pub mod imap;
pub mod oauth;
pub mod ownership;
pub mod smtp;
pub mod systemd;
pub mod tls;
pub mod webhook_http;
