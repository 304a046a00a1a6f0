//! The decisions of SPEC.md as pure functions over plain data: no network,
//! no database, no clock (time is an argument). Each file is one rule set
//! and carries its own table tests.

pub mod commands;
pub mod quotes;
