//! Domain values, parsed once at the edge and trusted everywhere after.
//!
//! An [`EmailAddress`] is lower-cased and checked when it is made; a
//! [`TicketId`] is positive; [`Priority`], [`TicketStatus`] and [`EventKind`]
//! are closed sets whose string forms are the ones in SPEC.md and in the
//! JSON output.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A mailbox address (`local@domain`), lower-cased. Display names are kept
/// apart, where they are needed at all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Accepts `a@b.c`, with surrounding spaces and `<>` removed. Refuses
    /// anything without exactly one `@`, with an empty side, or with spaces
    /// or control characters inside.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(format!("`{input}` is not an email address (no `@`)"));
        };
        if local.is_empty() || domain.is_empty() {
            return Err(format!("`{input}` is not an email address (empty part)"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) || local.contains('@') {
            return Err(format!("`{input}` is not an email address"));
        }
        // `user@example.com.` (a fully qualified domain) is the same mailbox
        let normalised = format!("{local}@{}", domain.trim_end_matches('.')).to_ascii_lowercase();
        // what we accept we must be able to write to: lettre checks the
        // grammar of both parts the way it will when sending
        normalised
            .parse::<lettre::Address>()
            .map_err(|e| format!("`{input}` is not an email address ({e})"))?;
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or("")
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// The address without a `+tag` in its local part: `support+t1.x@d` is
    /// `support@d`. Used to recognise plus-addressed mail to a department.
    pub fn without_tag(&self) -> EmailAddress {
        let local = self.local_part();
        let base = local.split_once('+').map(|(b, _)| b).unwrap_or(local);
        EmailAddress(format!("{base}@{}", self.domain()))
    }

    /// The `+tag` of the local part, if any.
    pub fn tag(&self) -> Option<&str> {
        self.local_part().split_once('+').map(|(_, t)| t)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.0
    }
}

impl FromStr for EmailAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// A ticket number as customers see it in `[#123]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(pub i64);

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let lower = s.trim().to_ascii_lowercase();
                match lower.as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "`{}` is not one of: {}",
                        s,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// How urgent a ticket is; set by agents with `#priority`.
    Priority { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" }
);

string_enum!(
    /// Where a ticket stands. `open` waits for an agent, `awaiting_customer`
    /// for the customer (the last message came from an agent); `closed` and
    /// `resolved` are both closed (see [`TicketStatus::is_closed`]).
    TicketStatus {
        Open => "open",
        AwaitingCustomer => "awaiting_customer",
        Closed => "closed",
        Resolved => "resolved",
    }
);

impl TicketStatus {
    pub fn is_closed(self) -> bool {
        matches!(self, TicketStatus::Closed | TicketStatus::Resolved)
    }
}

string_enum!(
    /// Why a ticket was closed (the `reason` of `ticket.closed`).
    CloseReason { Inactivity => "inactivity", Agent => "agent", Resolved => "resolved" }
);

string_enum!(
    /// The webhook events of SPEC.md, under their wire names.
    EventKind {
        TicketCreated => "ticket.created",
        TicketReplied => "ticket.replied",
        TicketClosed => "ticket.closed",
        TicketReopened => "ticket.reopened",
        TicketEscalated => "ticket.escalated",
        AttachmentUploaded => "attachment.uploaded",
        AttachmentRejected => "attachment.rejected",
        MailFailed => "mail.failed",
        SystemDegraded => "system.degraded",
        SystemRecovered => "system.recovered",
        MailboxAuthFailed => "mailbox.auth_failed",
        CustomerErased => "customer.erased",
    }
);

/// What the antivirus said of one file (adapters::clamd asks it;
/// rules::attachments turns it into a verdict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanOutcome {
    Clean,
    /// The signature name, as clamd gives it (`Eicar-Test-Signature`, with
    /// `.UNOFFICIAL` for signatures ClamAV did not sign).
    Infected(String),
    /// Not scanned: unreachable, timed out, size limit, or a reply we do
    /// not understand. Why, for the log and the record.
    Failed(String),
}

impl EventKind {
    /// About Guichet itself, not a ticket: `system.*` (sent at once from
    /// memory: the store may be what is failing), `mailbox.auth_failed`,
    /// and the audit event `customer.erased` (queued, with counts, never
    /// who). An endpoint gets these only when it opts in
    /// (`system_events = true` or naming them in `events`).
    pub fn is_system(self) -> bool {
        matches!(
            self,
            EventKind::SystemDegraded
                | EventKind::SystemRecovered
                | EventKind::MailboxAuthFailed
                | EventKind::CustomerErased
        )
    }
}

/// What is wrong with the store (the database or the attachment files)
/// when it cannot take a write: see `store::fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// No space left (SQLite FULL, PostgreSQL disk_full, ENOSPC, EDQUOT).
    DiskFull,
    /// The file system or the database refuses writes (EROFS, SQLite
    /// READONLY, PostgreSQL read_only_sql_transaction).
    ReadOnly,
    /// Reads or writes fail (EIO, SQLite IOERR, CANTOPEN, PostgreSQL io_error).
    Io,
    /// The database cannot be reached (connection lost or refused, the
    /// server shutting down, no connection free in time).
    Unavailable,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::DiskFull,
        Fault::ReadOnly,
        Fault::Io,
        Fault::Unavailable,
    ];

    /// A stable name, for metrics labels and webhook data.
    pub fn code(self) -> &'static str {
        match self {
            Fault::DiskFull => "disk_full",
            Fault::ReadOnly => "read_only",
            Fault::Io => "io_error",
            Fault::Unavailable => "unavailable",
        }
    }

    /// Words for people: "disk full since 03:12".
    pub fn describe(self) -> &'static str {
        match self {
            Fault::DiskFull => "disk full",
            Fault::ReadOnly => "read-only file system",
            Fault::Io => "I/O errors",
            Fault::Unavailable => "database unreachable",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_parsed_once_and_lower_cased() {
        let a = EmailAddress::parse(" <Support+T12.abc@Example.COM> ").unwrap();
        assert_eq!(a.as_str(), "support+t12.abc@example.com");
        assert_eq!(a.without_tag().as_str(), "support@example.com");
        assert_eq!(a.tag(), Some("t12.abc"));
        assert_eq!(
            EmailAddress::parse("a@Example.com.").unwrap().as_str(),
            "a@example.com"
        );
        for bad in [
            "",
            "nobody",
            "@x",
            "a@",
            "a b@c",
            "a@b@c",
            "a@exa_mple..com",
            "a@[bad",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn string_enums_round_trip() {
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>().unwrap(), *p);
        }
        assert_eq!("URGENT".parse::<Priority>().unwrap(), Priority::Urgent);
        assert!(
            "asap"
                .parse::<Priority>()
                .unwrap_err()
                .contains("low, normal, high, urgent")
        );
        assert!(TicketStatus::Resolved.is_closed());
        assert!(!TicketStatus::AwaitingCustomer.is_closed());
        assert_eq!(EventKind::TicketCreated.to_string(), "ticket.created");
    }
}
