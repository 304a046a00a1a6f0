//! Mail as data: inbound bytes → facts ([`inbound`]), outgoing facts →
//! bytes ([`outbound`]), and the templates every outgoing text comes from
//! ([`templates`]). No network here.

pub mod html;
pub mod inbound;
pub mod outbound;
pub mod templates;
pub mod words;
