//! The figures of `guichet stats` (SPEC.md "Metrics and maintenance"),
//! computed from plain facts the store loads, for a period
//! `[since, until)`.
//!
//! The period includes `since` and excludes `until` (periods laid end to
//! end count every event once). Without `since`, it starts at the
//! beginning. Each figure's population is written on its field below; in
//! short, an event counts in the period when its own instant does
//! (creation, closing, reopening, attachment, webhook event).
//!
//! Percentiles are nearest-rank: of `n` sorted values, the p-th percentile
//! is the value of rank `ceil(p/100 × n)` (1-based). So the median of an
//! even count is the lower of the two middle values, and every reported
//! figure is one that really happened. Durations are whole seconds in JSON
//! and "2 d 3 h" in the text report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::CloseReason;
use crate::settings::Language;

/// One ticket's history, as far as the figures need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub ticket_id: i64,
    /// The person who opened it: their customer key (one address for all
    /// the addresses merged as theirs); `None` once retention archived it.
    pub customer: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The first agent reply relayed to the customer (not a note, not an
    /// acknowledgement).
    pub first_agent_reply_at: Option<DateTime<Utc>>,
    /// The last closing, when the ticket is closed now.
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<CloseReason>,
    /// Every closing, in any order. When empty, `closed_at` with
    /// `close_reason` stands for a single closing.
    pub closings: Vec<(DateTime<Utc>, CloseReason)>,
    /// Every reopening, in any order.
    pub reopenings: Vec<DateTime<Utc>>,
}

/// One attachment offered by a customer, with its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentFacts {
    pub at: DateTime<Utc>,
    /// Extension or sniffed MIME type; grouped case-insensitively, without
    /// surrounding spaces or leading dots, an empty one as `unknown`.
    pub file_type: String,
    pub bytes: u64,
    /// `None` when accepted; else the refusal's reason code.
    pub refusal_code: Option<String>,
}

/// One webhook delivery (one event to one endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFacts {
    /// When the event occurred (was queued).
    pub at: DateTime<Utc>,
    pub delivered: bool,
    /// Permanent failure or dead-lettered after the last retry.
    pub dead: bool,
    /// HTTP attempts made so far.
    pub attempts: u32,
}

/// The report. Field names are the stable JSON contract of
/// `guichet stats --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub period: Period,
    pub tickets: TicketStats,
    pub customers: CustomerStats,
    pub attachments: AttachmentStats,
    pub webhooks: WebhookStats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// Inclusive; `null` for "from the beginning".
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketStats {
    /// Tickets created in the period.
    pub opened: u64,
    /// Closings in the period (a ticket closed twice counts twice).
    pub closed: u64,
    /// The same closings by reason; every reason is present.
    pub closed_by_reason: ClosedByReason,
    /// Reopenings in the period.
    pub reopened: u64,
    /// Tickets with at least one closing in the period (the reopen rate's
    /// base).
    pub reopen_base: u64,
    /// Among [`reopen_base`](Self::reopen_base), tickets reopened after
    /// their first closing in the period (and before `until`).
    pub reopen_count: u64,
    /// `reopen_count / reopen_base`, from 0 to 1; `null` when no ticket was
    /// closed in the period.
    pub reopen_rate: Option<f64>,
    /// Inactivity closings / all closings in the period, from 0 to 1;
    /// `null` without closings.
    pub auto_closed_share: Option<f64>,
    /// Creation → first agent reply, for tickets created in the period that
    /// got a reply before `until`.
    pub time_to_first_answer: DurationSummary,
    /// Creation → first closing, for tickets whose first closing is in the
    /// period (so a ticket created long ago and closed now counts, with its
    /// true age).
    pub time_to_close: DurationSummary,
}

/// Who opened the period's tickets (issue 20). Only tickets still held
/// count: retention and erasure keep no address, so these figures, unlike
/// the others, drop when tickets are archived or a person is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CustomerStats {
    /// People: the addresses merged as one customer's count once.
    pub people: u64,
    /// Tickets those people opened (tickets still held).
    pub tickets: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ClosedByReason {
    pub inactivity: u64,
    pub agent: u64,
    pub resolved: u64,
}

/// Nearest-rank median and 90th percentile, in whole seconds; `null` when
/// `count` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DurationSummary {
    pub count: u64,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentStats {
    pub accepted: Volume,
    pub refused: Volume,
    /// By lower-cased file type, sorted.
    pub by_type: BTreeMap<String, TypeVolume>,
    /// Refusals by reason code, sorted.
    pub refusals_by_reason: BTreeMap<String, Volume>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Volume {
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TypeVolume {
    pub accepted: Volume,
    pub refused: Volume,
}

/// Over deliveries whose event occurred in the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct WebhookStats {
    /// All deliveries (event × endpoint).
    pub total: u64,
    /// Delivered (a 2xx answer).
    pub delivered: u64,
    /// Given up: permanent failure or dead-lettered.
    pub failed: u64,
    /// Neither yet: still queued or retrying.
    pub pending: u64,
    /// Attempts beyond each delivery's first.
    pub retries: u64,
}

/// Computes every figure for the period `[since, until)`.
pub fn compute(
    since: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    tickets: &[TicketFacts],
    attachments: &[AttachmentFacts],
    deliveries: &[DeliveryFacts],
) -> Stats {
    let in_period = |t: DateTime<Utc>| since.is_none_or(|s| t >= s) && t < until;
    Stats {
        period: Period { since, until },
        tickets: ticket_stats(&in_period, until, tickets),
        customers: customer_stats(&in_period, tickets),
        attachments: attachment_stats(&in_period, attachments),
        webhooks: webhook_stats(&in_period, deliveries),
    }
}

fn customer_stats(
    in_period: &impl Fn(DateTime<Utc>) -> bool,
    tickets: &[TicketFacts],
) -> CustomerStats {
    let mut people = std::collections::BTreeSet::new();
    let mut count = 0;
    for t in tickets.iter().filter(|t| in_period(t.created_at)) {
        if let Some(c) = &t.customer {
            people.insert(c.as_str());
            count += 1;
        }
    }
    CustomerStats {
        people: people.len() as u64,
        tickets: count,
    }
}

fn ticket_stats(
    in_period: &impl Fn(DateTime<Utc>) -> bool,
    until: DateTime<Utc>,
    tickets: &[TicketFacts],
) -> TicketStats {
    let mut opened = 0;
    let mut by_reason = ClosedByReason::default();
    let mut reopened = 0;
    let mut reopen_base = 0;
    let mut reopen_count = 0;
    let mut first_answer = Vec::new();
    let mut to_close = Vec::new();
    for t in tickets {
        let closings: Vec<(DateTime<Utc>, CloseReason)> = if t.closings.is_empty() {
            t.closed_at.zip(t.close_reason).into_iter().collect()
        } else {
            t.closings.clone()
        };
        if in_period(t.created_at) {
            opened += 1;
            if let Some(reply) = t.first_agent_reply_at.filter(|&r| r < until) {
                first_answer.push(seconds_between(t.created_at, reply));
            }
        }
        for &(_, reason) in closings.iter().filter(|(w, _)| in_period(*w)) {
            match reason {
                CloseReason::Inactivity => by_reason.inactivity += 1,
                CloseReason::Agent => by_reason.agent += 1,
                CloseReason::Resolved => by_reason.resolved += 1,
            }
        }
        reopened += t.reopenings.iter().filter(|&&r| in_period(r)).count() as u64;
        if let Some(first_in_period) = closings.iter().map(|c| c.0).filter(|&w| in_period(w)).min()
        {
            reopen_base += 1;
            if t.reopenings
                .iter()
                .any(|&r| r > first_in_period && r < until)
            {
                reopen_count += 1;
            }
        }
        if let Some(first_close) = closings.iter().map(|c| c.0).min()
            && in_period(first_close)
        {
            to_close.push(seconds_between(t.created_at, first_close));
        }
    }
    let closed = by_reason.inactivity + by_reason.agent + by_reason.resolved;
    TicketStats {
        opened,
        closed,
        closed_by_reason: by_reason,
        reopened,
        reopen_base,
        reopen_count,
        reopen_rate: ratio(reopen_count, reopen_base),
        auto_closed_share: ratio(by_reason.inactivity, closed),
        time_to_first_answer: summarise(first_answer),
        time_to_close: summarise(to_close),
    }
}

fn attachment_stats(
    in_period: &impl Fn(DateTime<Utc>) -> bool,
    attachments: &[AttachmentFacts],
) -> AttachmentStats {
    let mut stats = AttachmentStats {
        accepted: Volume::default(),
        refused: Volume::default(),
        by_type: BTreeMap::new(),
        refusals_by_reason: BTreeMap::new(),
    };
    for a in attachments.iter().filter(|a| in_period(a.at)) {
        let file_type = match a.file_type.trim().trim_start_matches('.').to_lowercase() {
            t if t.is_empty() => "unknown".to_owned(),
            t => t,
        };
        let per_type = stats.by_type.entry(file_type).or_default();
        match &a.refusal_code {
            None => {
                stats.accepted.add(a.bytes);
                per_type.accepted.add(a.bytes);
            }
            Some(code) => {
                stats.refused.add(a.bytes);
                per_type.refused.add(a.bytes);
                stats
                    .refusals_by_reason
                    .entry(code.clone())
                    .or_default()
                    .add(a.bytes);
            }
        }
    }
    stats
}

fn webhook_stats(
    in_period: &impl Fn(DateTime<Utc>) -> bool,
    deliveries: &[DeliveryFacts],
) -> WebhookStats {
    let mut w = WebhookStats::default();
    for d in deliveries.iter().filter(|d| in_period(d.at)) {
        w.total += 1;
        if d.delivered {
            w.delivered += 1;
        } else if d.dead {
            w.failed += 1;
        } else {
            w.pending += 1;
        }
        w.retries += u64::from(d.attempts.saturating_sub(1));
    }
    w
}

impl Volume {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// Seconds from `from` to `to`, 0 when clocks put them the wrong way round.
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_seconds().max(0)
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn summarise(mut values: Vec<i64>) -> DurationSummary {
    values.sort_unstable();
    DurationSummary {
        count: values.len() as u64,
        median_seconds: nearest_rank(&values, 50),
        p90_seconds: nearest_rank(&values, 90),
    }
}

/// The `percent`-th percentile of sorted `values`, nearest-rank:
/// rank `ceil(percent × n / 100)`, at least 1.
fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// "2 d 3 h", "5 h 12 min", "4 min", "30 s": the two largest units, for a
/// human reading the report. French uses `j` for days.
pub fn human_duration(seconds: i64, lang: Language) -> String {
    let s = seconds.max(0);
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    let d = match lang {
        Language::En => "d",
        Language::Fr => "j",
    };
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (dd, 0, _) => format!("{dd} {d}"),
        (dd, h, _) => format!("{dd} {d} {h} h"),
    }
}

/// The human report of `guichet stats`, in English or French.
pub fn render_text(stats: &Stats, lang: Language) -> String {
    let fr = lang == Language::Fr;
    let tr = |en: &'static str, fr_text: &'static str| if fr { fr_text } else { en };
    let pct = |r: Option<f64>| match r {
        Some(r) => {
            let text = format!("{:.1} %", r * 100.0);
            if fr { text.replace('.', ",") } else { text }
        }
        None => tr("n/a", "n.d.").to_owned(),
    };
    let summary = |d: &DurationSummary| match (d.median_seconds, d.p90_seconds) {
        (Some(m), Some(p)) => format!(
            "{} {}, p90 {} ({} {})",
            tr("median", "médiane"),
            human_duration(m, lang),
            human_duration(p, lang),
            d.count,
            tr("tickets", "tickets"),
        ),
        _ => tr("n/a (no ticket)", "n.d. (aucun ticket)").to_owned(),
    };
    let t = &stats.tickets;
    let mut out = String::new();
    let since = match stats.period.since {
        Some(s) => s.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => tr("the beginning", "le début").to_owned(),
    };
    let until = stats.period.until.format("%Y-%m-%d %H:%M:%S UTC");
    let _ = writeln!(out, "{} {since} → {until}", tr("Period:", "Période :"));
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", tr("Tickets", "Tickets"));
    let _ = writeln!(out, "  {} {}", tr("opened:", "ouverts :"), t.opened);
    let _ = writeln!(
        out,
        "  {} {} ({} {})",
        tr("customers:", "clients :"),
        stats.customers.people,
        tr("tickets still held:", "tickets encore conservés :"),
        stats.customers.tickets
    );
    let _ = writeln!(
        out,
        "  {} {} ({} {}, {} {}, {} {})",
        tr("closed:", "fermés :"),
        t.closed,
        tr("inactivity", "inactivité"),
        t.closed_by_reason.inactivity,
        tr("agent", "agent"),
        t.closed_by_reason.agent,
        tr("resolved", "résolus"),
        t.closed_by_reason.resolved,
    );
    let _ = writeln!(out, "  {} {}", tr("reopened:", "ré-ouverts :"), t.reopened);
    let _ = writeln!(
        out,
        "  {} {} ({} / {} {})",
        tr("reopen rate:", "taux de ré-ouverture :"),
        pct(t.reopen_rate),
        t.reopen_count,
        t.reopen_base,
        tr("closed tickets", "tickets fermés"),
    );
    let _ = writeln!(
        out,
        "  {} {}",
        tr("auto-closed share:", "part fermée automatiquement :"),
        pct(t.auto_closed_share),
    );
    let _ = writeln!(
        out,
        "  {} {}",
        tr("time to first answer:", "délai de première réponse :"),
        summary(&t.time_to_first_answer),
    );
    let _ = writeln!(
        out,
        "  {} {}",
        tr("time to close:", "temps de fermeture :"),
        summary(&t.time_to_close),
    );
    let a = &stats.attachments;
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", tr("Attachments", "Pièces jointes"));
    let _ = writeln!(
        out,
        "  {} {} ({})",
        tr("accepted:", "acceptées :"),
        a.accepted.count,
        human_bytes(a.accepted.bytes, lang),
    );
    let _ = writeln!(
        out,
        "  {} {} ({})",
        tr("refused:", "refusées :"),
        a.refused.count,
        human_bytes(a.refused.bytes, lang),
    );
    if !a.by_type.is_empty() {
        let _ = writeln!(out, "  {}", tr("by file type:", "par type de fichier :"));
        for (file_type, v) in &a.by_type {
            let _ = writeln!(
                out,
                "    {file_type}: {} {} ({}), {} {} ({})",
                v.accepted.count,
                tr("accepted", "acceptées"),
                human_bytes(v.accepted.bytes, lang),
                v.refused.count,
                tr("refused", "refusées"),
                human_bytes(v.refused.bytes, lang),
            );
        }
    }
    if !a.refusals_by_reason.is_empty() {
        let _ = writeln!(out, "  {}", tr("refusals by reason:", "refus par motif :"));
        for (reason, v) in &a.refusals_by_reason {
            let _ = writeln!(
                out,
                "    {reason}: {} ({})",
                v.count,
                human_bytes(v.bytes, lang)
            );
        }
    }
    let w = &stats.webhooks;
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", tr("Webhooks", "Webhooks"));
    let _ = writeln!(
        out,
        "  {} {}, {} {}, {} {}, {} {} ({} {})",
        tr("deliveries:", "envois :"),
        w.total,
        tr("delivered", "livrés"),
        w.delivered,
        tr("failed", "échecs"),
        w.failed,
        tr("pending", "en attente"),
        w.pending,
        tr("retries", "nouvelles tentatives"),
        w.retries,
    );
    out
}

/// Bytes in binary units, one decimal from KiB up ("1.5 MiB"); French
/// writes the decimal comma and octets ("1,5 Mio").
pub fn human_bytes(bytes: u64, lang: Language) -> String {
    let units: [&str; 5] = match lang {
        Language::En => ["B", "KiB", "MiB", "GiB", "TiB"],
        Language::Fr => ["o", "Kio", "Mio", "Gio", "Tio"],
    };
    if bytes < 1024 {
        return format!("{bytes} {}", units[0]);
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1} {}", units[unit]);
    if lang == Language::Fr {
        text.replace('.', ",")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CloseReason::{Agent, Inactivity, Resolved};
    use chrono::TimeZone;

    fn at(mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, mo, d, h, mi, s).unwrap()
    }

    const H: i64 = 3_600;
    const DAY: i64 = 86_400;

    fn ticket(
        id: i64,
        created_at: DateTime<Utc>,
        first_agent_reply_at: Option<DateTime<Utc>>,
        closings: Vec<(DateTime<Utc>, CloseReason)>,
        reopenings: Vec<DateTime<Utc>>,
    ) -> TicketFacts {
        // closed now when the last closing is after the last reopening
        let last_close = closings.iter().max_by_key(|c| c.0).copied();
        let last_reopen = reopenings.iter().max().copied();
        let current = last_close.filter(|c| last_reopen.is_none_or(|r| r < c.0));
        TicketFacts {
            ticket_id: id,
            customer: Some(format!("c{}@example.test", id % 2)),
            created_at,
            first_agent_reply_at,
            closed_at: current.map(|c| c.0),
            close_reason: current.map(|c| c.1),
            closings,
            reopenings,
        }
    }

    fn attachment(
        at: DateTime<Utc>,
        ty: &str,
        bytes: u64,
        refusal: Option<&str>,
    ) -> AttachmentFacts {
        AttachmentFacts {
            at,
            file_type: ty.to_owned(),
            bytes,
            refusal_code: refusal.map(str::to_owned),
        }
    }

    fn delivery(at: DateTime<Utc>, delivered: bool, dead: bool, attempts: u32) -> DeliveryFacts {
        DeliveryFacts {
            at,
            delivered,
            dead,
            attempts,
        }
    }

    /// The period of the known history: March 2024, `[03-01, 04-01)`.
    fn march() -> (Option<DateTime<Utc>>, DateTime<Utc>) {
        (Some(at(3, 1, 0, 0, 0)), at(4, 1, 0, 0, 0))
    }

    fn known_tickets() -> Vec<TicketFacts> {
        vec![
            // T1 created in February: not opened in March. First closing
            // 02-25 (not in March, so no time to close); reopened 03-02
            // (counts as a reopening), closed again 03-05 (resolved). In the
            // reopen base (closed in March) but not reopened after 03-05.
            ticket(
                1,
                at(2, 20, 10, 0, 0),
                Some(at(2, 20, 12, 0, 0)),
                vec![(at(2, 25, 10, 0, 0), Agent), (at(3, 5, 10, 0, 0), Resolved)],
                vec![at(3, 2, 9, 0, 0)],
            ),
            // T2 created exactly at `since`: opened. First answer 2 h.
            // Closed 03-04 (agent) → time to close 3 d; reopened 03-06;
            // closed 03-20 (inactivity). Base + reopened.
            ticket(
                2,
                at(3, 1, 0, 0, 0),
                Some(at(3, 1, 2, 0, 0)),
                vec![(at(3, 4, 0, 0, 0), Agent), (at(3, 20, 0, 0, 0), Inactivity)],
                vec![at(3, 6, 0, 0, 0)],
            ),
            // T3 created one second before `since` (leap day): not opened,
            // no answer. First closing 03-09 23:59:59 (inactivity) is in
            // March → time to close exactly 9 d. Base, not reopened.
            ticket(
                3,
                at(2, 29, 23, 59, 59),
                None,
                vec![(at(3, 9, 23, 59, 59), Inactivity)],
                vec![],
            ),
            // T4: opened; first answer 30 min; resolved after 2 d. Base.
            ticket(
                4,
                at(3, 10, 8, 0, 0),
                Some(at(3, 10, 8, 30, 0)),
                vec![(at(3, 12, 8, 0, 0), Resolved)],
                vec![],
            ),
            // T5: opened; first answer 27 h = 1 d 3 h; auto-closed after
            // 10 d, reopened 03-28 and still open. Base + reopened.
            ticket(
                5,
                at(3, 15, 0, 0, 0),
                Some(at(3, 16, 3, 0, 0)),
                vec![(at(3, 25, 0, 0, 0), Inactivity)],
                vec![at(3, 28, 0, 0, 0)],
            ),
            // T6: opened, never answered nor closed.
            ticket(6, at(3, 20, 0, 0, 0), None, vec![], vec![]),
            // T7 created exactly at `until`: outside, entirely.
            ticket(
                7,
                at(4, 1, 0, 0, 0),
                Some(at(4, 1, 1, 0, 0)),
                vec![(at(4, 1, 2, 0, 0), Agent)],
                vec![],
            ),
            // T8: opened 03-31; its answer comes at `until` exactly, so it
            // has no first answer within the period.
            ticket(
                8,
                at(3, 31, 12, 0, 0),
                Some(at(4, 1, 0, 0, 0)),
                vec![],
                vec![],
            ),
        ]
    }

    fn known_attachments() -> Vec<AttachmentFacts> {
        vec![
            attachment(at(2, 28, 12, 0, 0), "png", 1_000, None), // before
            attachment(at(3, 1, 0, 0, 0), "png", 2_048, None),   // at since: in
            attachment(at(3, 2, 0, 0, 0), "PNG", 1_000, None),   // same type
            attachment(
                at(3, 3, 0, 0, 0),
                "pdf",
                5_000,
                Some("extension_not_allowed"),
            ),
            attachment(at(3, 4, 0, 0, 0), "exe", 300, Some("executable")),
            attachment(at(3, 5, 0, 0, 0), "png", 9_000_000, Some("too_large")),
            attachment(
                at(3, 6, 0, 0, 0),
                " .PDF ", // grouped with "pdf"
                700,
                Some("extension_not_allowed"),
            ),
            attachment(at(3, 7, 0, 0, 0), "", 10, None), // unknown type
            attachment(at(4, 1, 0, 0, 0), "jpg", 10, None), // at until: out
        ]
    }

    fn known_deliveries() -> Vec<DeliveryFacts> {
        vec![
            delivery(at(2, 28, 0, 0, 0), true, false, 1), // before
            delivery(at(3, 1, 0, 0, 0), true, false, 1),  // 0 retries
            delivery(at(3, 2, 0, 0, 0), true, false, 3),  // 2 retries
            delivery(at(3, 3, 0, 0, 0), false, true, 1),  // permanent 4xx
            delivery(at(3, 4, 0, 0, 0), false, true, 8),  // dead after 7 retries
            delivery(at(3, 5, 0, 0, 0), false, false, 2), // pending, 1 retry
            delivery(at(3, 6, 0, 0, 0), false, false, 0), // queued, none yet
            delivery(at(4, 1, 0, 0, 0), false, true, 5),  // at until: out
        ]
    }

    #[test]
    fn known_history_gives_exact_figures() {
        let (since, until) = march();
        let s = compute(
            since,
            until,
            &known_tickets(),
            &known_attachments(),
            &known_deliveries(),
        );
        let t = &s.tickets;
        // opened: T2 (at since), T4, T5, T6, T8 = 5
        assert_eq!(t.opened, 5);
        // closings in March: T1 resolved 03-05, T2 agent 03-04, T2
        // inactivity 03-20, T3 inactivity 03-09, T4 resolved 03-12, T5
        // inactivity 03-25 = 6: inactivity 3, agent 1, resolved 2
        assert_eq!(t.closed, 6);
        assert_eq!(
            t.closed_by_reason,
            ClosedByReason {
                inactivity: 3,
                agent: 1,
                resolved: 2
            }
        );
        // reopenings in March: T1 03-02, T2 03-06, T5 03-28 = 3
        assert_eq!(t.reopened, 3);
        // reopen rate: base T1..T5 = 5; reopened after first March
        // closing: T2 (03-06 > 03-04), T5 (03-28 > 03-25) = 2 → 2/5 = 0.4
        assert_eq!((t.reopen_count, t.reopen_base), (2, 5));
        assert_eq!(t.reopen_rate, Some(0.4));
        // auto-closed share: 3 inactivity / 6 closings = 0.5
        assert_eq!(t.auto_closed_share, Some(0.5));
        // first answer: T2 2 h, T4 30 min, T5 27 h (T8's is at until)
        // sorted [1800, 7200, 97200]; median rank ceil(1.5) = 2 → 7200;
        // p90 rank ceil(2.7) = 3 → 97200
        assert_eq!(
            t.time_to_first_answer,
            DurationSummary {
                count: 3,
                median_seconds: Some(2 * H),
                p90_seconds: Some(27 * H)
            }
        );
        // time to close (first closing in March): T2 3 d, T3 9 d, T4 2 d,
        // T5 10 d (T1's first closing is in February)
        // sorted [2 d, 3 d, 9 d, 10 d]; median rank ceil(2) = 2 → 3 d;
        // p90 rank ceil(3.6) = 4 → 10 d
        assert_eq!(
            t.time_to_close,
            DurationSummary {
                count: 4,
                median_seconds: Some(3 * DAY),
                p90_seconds: Some(10 * DAY)
            }
        );

        let a = &s.attachments;
        // accepted: png 2048 + png 1000 + unknown 10 = 3 files, 3058 bytes
        assert_eq!(
            a.accepted,
            Volume {
                count: 3,
                bytes: 3_058
            }
        );
        // refused: 5000 + 300 + 9_000_000 + 700 = 4 files, 9_006_000 bytes
        assert_eq!(
            a.refused,
            Volume {
                count: 4,
                bytes: 9_006_000
            }
        );
        let v = |count, bytes| Volume { count, bytes };
        let by_type: Vec<(&str, TypeVolume)> =
            a.by_type.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            by_type,
            vec![
                (
                    "exe",
                    TypeVolume {
                        accepted: v(0, 0),
                        refused: v(1, 300)
                    }
                ),
                (
                    "pdf",
                    TypeVolume {
                        accepted: v(0, 0),
                        refused: v(2, 5_700)
                    }
                ),
                (
                    "png",
                    TypeVolume {
                        accepted: v(2, 3_048),
                        refused: v(1, 9_000_000)
                    }
                ),
                (
                    "unknown",
                    TypeVolume {
                        accepted: v(1, 10),
                        refused: v(0, 0)
                    }
                ),
            ]
        );
        let reasons: Vec<(&str, Volume)> = a
            .refusals_by_reason
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("executable", v(1, 300)),
                ("extension_not_allowed", v(2, 5_700)),
                ("too_large", v(1, 9_000_000)),
            ]
        );

        // webhooks in March: 6 deliveries; delivered 2, failed 2, pending 2;
        // retries 0 + 2 + 0 + 7 + 1 + 0 = 10
        assert_eq!(
            s.webhooks,
            WebhookStats {
                total: 6,
                delivered: 2,
                failed: 2,
                pending: 2,
                retries: 10
            }
        );
    }

    #[test]
    fn without_since_everything_before_until_counts() {
        let (_, until) = march();
        let s = compute(
            None,
            until,
            &known_tickets(),
            &known_attachments(),
            &known_deliveries(),
        );
        // T1..T6 and T8 (T7 is at until)
        assert_eq!(s.tickets.opened, 7);
        // the March six plus T1's February closing
        assert_eq!(s.tickets.closed, 7);
        assert_eq!(s.tickets.closed_by_reason.agent, 2);
        // T1 now counts as reopened after its first closing (02-25 → 03-02)
        assert_eq!((s.tickets.reopen_count, s.tickets.reopen_base), (3, 5));
        // T1's first answer (2 h) joins: [1800, 7200, 7200, 97200]
        assert_eq!(s.tickets.time_to_first_answer.count, 4);
        assert_eq!(s.tickets.time_to_first_answer.median_seconds, Some(2 * H));
        // T1's time to close (5 d) joins: [2, 3, 5, 9, 10] d → median 5 d
        assert_eq!(s.tickets.time_to_close.median_seconds, Some(5 * DAY));
        assert_eq!(s.attachments.accepted.count, 4);
        assert_eq!(s.webhooks.total, 7);
    }

    #[test]
    fn empty_store_has_no_rates() {
        let (since, until) = march();
        let s = compute(since, until, &[], &[], &[]);
        assert_eq!(s.tickets.opened, 0);
        assert_eq!(s.tickets.closed, 0);
        assert_eq!(s.tickets.reopen_rate, None);
        assert_eq!(s.tickets.auto_closed_share, None);
        assert_eq!(s.tickets.time_to_close.median_seconds, None);
        assert_eq!(s.tickets.time_to_first_answer.p90_seconds, None);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["tickets"]["reopen_rate"], serde_json::Value::Null);
        assert_eq!(
            json["tickets"]["auto_closed_share"],
            serde_json::Value::Null
        );
        assert_eq!(
            json["tickets"]["time_to_close"],
            serde_json::json!({"count": 0, "median_seconds": null, "p90_seconds": null})
        );
        assert_eq!(json["attachments"]["by_type"], serde_json::json!({}));
        let text = render_text(&s, Language::En);
        assert!(
            text.contains("reopen rate: n/a (0 / 0 closed tickets)"),
            "{text}"
        );
        assert!(text.contains("time to close: n/a (no ticket)"), "{text}");
    }

    #[test]
    fn one_ticket() {
        let (since, until) = march();
        let created = at(3, 10, 9, 0, 0);
        let t = ticket(
            1,
            created,
            Some(created + chrono::TimeDelta::seconds(45 * 60)),
            vec![(created + chrono::TimeDelta::seconds(7 * DAY), Inactivity)],
            vec![],
        );
        let s = compute(since, until, &[t], &[], &[]);
        assert_eq!(s.tickets.opened, 1);
        assert_eq!(s.tickets.closed, 1);
        assert_eq!(s.tickets.reopen_rate, Some(0.0));
        assert_eq!(s.tickets.auto_closed_share, Some(1.0));
        let one = |secs| DurationSummary {
            count: 1,
            median_seconds: Some(secs),
            p90_seconds: Some(secs),
        };
        assert_eq!(s.tickets.time_to_first_answer, one(45 * 60));
        assert_eq!(s.tickets.time_to_close, one(7 * DAY));
    }

    #[test]
    fn period_boundaries() {
        let since = at(3, 1, 0, 0, 0);
        let until = at(4, 1, 0, 0, 0);
        let one_sec = chrono::TimeDelta::seconds(1);
        // (created at, opened in the period?)
        let cases = [
            (since - one_sec, false),
            (since, true),
            (since + one_sec, true),
            (until - one_sec, true),
            (until, false),
        ];
        for (created, want) in cases {
            let t = ticket(1, created, None, vec![(created, Agent)], vec![created]);
            let a = attachment(created, "png", 1, None);
            let d = delivery(created, true, false, 1);
            let s = compute(Some(since), until, &[t], &[a], &[d]);
            let n = u64::from(want);
            assert_eq!(
                (
                    s.tickets.opened,
                    s.tickets.closed,
                    s.tickets.reopened,
                    s.attachments.accepted.count,
                    s.webhooks.delivered
                ),
                (n, n, n, n, n),
                "event at {created}"
            );
        }
    }

    #[test]
    fn closed_at_stands_in_when_closings_are_missing() {
        let (since, until) = march();
        let t = TicketFacts {
            ticket_id: 9,
            customer: None,
            created_at: at(3, 2, 0, 0, 0),
            first_agent_reply_at: None,
            closed_at: Some(at(3, 3, 0, 0, 0)),
            close_reason: Some(Resolved),
            closings: vec![],
            reopenings: vec![],
        };
        let s = compute(since, until, &[t], &[], &[]);
        assert_eq!(s.tickets.closed_by_reason.resolved, 1);
        assert_eq!(s.tickets.time_to_close.median_seconds, Some(DAY));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let ten: Vec<i64> = (1..=10).collect();
        // (values, percent, expected)
        let cases: &[(&[i64], usize, Option<i64>)] = &[
            (&[], 50, None),
            (&[7], 50, Some(7)),
            (&[7], 90, Some(7)),
            (&[1, 2], 50, Some(1)),
            (&[1, 2], 90, Some(2)),
            (&[1, 2, 3, 4], 50, Some(2)),
            (&ten, 50, Some(5)),
            (&ten, 90, Some(9)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 90, Some(10)),
        ];
        for &(values, percent, want) in cases {
            assert_eq!(
                nearest_rank(values, percent),
                want,
                "p{percent} of {values:?}"
            );
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let (since, until) = march();
        let s = compute(
            since,
            until,
            &known_tickets(),
            &known_attachments(),
            &known_deliveries(),
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["period"]["since"], "2024-03-01T00:00:00Z");
        assert_eq!(json["period"]["until"], "2024-04-01T00:00:00Z");
        assert_eq!(
            json["tickets"]["closed_by_reason"],
            serde_json::json!({"inactivity": 3, "agent": 1, "resolved": 2})
        );
        assert_eq!(json["tickets"]["reopen_rate"], 0.4);
        // the known tickets alternate between two customers
        assert_eq!(json["customers"]["people"], 2);
        assert_eq!(json["tickets"]["time_to_close"]["p90_seconds"], 864_000);
        assert_eq!(
            json["attachments"]["by_type"]["png"],
            serde_json::json!({"accepted": {"count": 2, "bytes": 3048},
                               "refused": {"count": 1, "bytes": 9000000}})
        );
        assert_eq!(
            json["attachments"]["refusals_by_reason"]["too_large"],
            serde_json::json!({"count": 1, "bytes": 9000000})
        );
        assert_eq!(
            json["webhooks"],
            serde_json::json!({"total": 6, "delivered": 2, "failed": 2, "pending": 2, "retries": 10})
        );
        let keys: Vec<&str> = json["tickets"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = vec![
            "opened",
            "closed",
            "closed_by_reason",
            "reopened",
            "reopen_base",
            "reopen_count",
            "reopen_rate",
            "auto_closed_share",
            "time_to_first_answer",
            "time_to_close",
        ];
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn text_report_in_both_languages() {
        let (since, until) = march();
        let s = compute(
            since,
            until,
            &known_tickets(),
            &known_attachments(),
            &known_deliveries(),
        );
        let en = render_text(&s, Language::En);
        for line in [
            "Period: 2024-03-01 00:00:00 UTC → 2024-04-01 00:00:00 UTC",
            "  opened: 5",
            "  closed: 6 (inactivity 3, agent 1, resolved 2)",
            "  reopened: 3",
            "  reopen rate: 40.0 % (2 / 5 closed tickets)",
            "  auto-closed share: 50.0 %",
            "  time to first answer: median 2 h, p90 1 d 3 h (3 tickets)",
            "  time to close: median 3 d, p90 10 d (4 tickets)",
            "  accepted: 3 (3.0 KiB)",
            "  refused: 4 (8.6 MiB)",
            "    png: 2 accepted (3.0 KiB), 1 refused (8.6 MiB)",
            "    too_large: 1 (8.6 MiB)",
            "  deliveries: 6, delivered 2, failed 2, pending 2 (retries 10)",
        ] {
            assert!(en.lines().any(|l| l == line), "missing {line:?} in:\n{en}");
        }
        let fr = render_text(&s, Language::Fr);
        for line in [
            "  taux de ré-ouverture : 40,0 % (2 / 5 tickets fermés)",
            "  temps de fermeture : médiane 3 j, p90 10 j (4 tickets)",
            "  refusées : 4 (8,6 Mio)",
        ] {
            assert!(fr.lines().any(|l| l == line), "missing {line:?} in:\n{fr}");
        }
    }

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min"),
            (3_599, "59 min"),
            (3_600, "1 h"),
            (5 * H + 12 * 60, "5 h 12 min"),
            (DAY, "1 d"),
            (2 * DAY + 3 * H + 59 * 60, "2 d 3 h"),
            (-5, "0 s"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs, Language::En), want, "{secs} s");
        }
        assert_eq!(human_duration(2 * DAY + 3 * H, Language::Fr), "2 j 3 h");
    }
}
