//! Who holds a claim on a queued mail or webhook delivery: the daemon
//! process, as `host/pid/start` (its start time in clock ticks since the
//! machine booted, so that a pid used again by another process is not
//! taken for the dead one). A daemon that starts on PostgreSQL gives back
//! the claims of the dead daemons of its own host at once; those of
//! other hosts wait for their leases. The same holds for the UIDs of a
//! shared mailbox a daemon claimed before fetching them (`fetch_claims`).

use std::sync::OnceLock;

use anyhow::Result;
use sqlx::PgPool;

/// This process, as it signs its claims.
pub fn holder() -> &'static str {
    static HOLDER: OnceLock<String> = OnceLock::new();
    HOLDER.get_or_init(|| {
        let pid = std::process::id();
        format!("{}/{pid}/{}", host(), start_of(pid).unwrap_or(0))
    })
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".to_string())
}

/// When process `pid` started (field 22 of /proc/PID/stat), if it runs.
fn start_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_in_stat(&stat)
}

/// The start time in a /proc/PID/stat line: the 20th field after the
/// command name, which is in parentheses and may hold spaces.
fn start_in_stat(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `holder` is a daemon of this host that no longer runs.
pub fn is_dead_here(holder: &str, this_host: &str) -> bool {
    let mut parts = holder.rsplitn(3, '/');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != this_host {
        return false;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_of(pid) != Some(start)
}

/// Gives back the claims of dead daemons of this host. Returns how many.
pub async fn release_dead_on_this_host(p: &PgPool) -> Result<u64> {
    let holders: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT claimed_by FROM outbox_mail WHERE claimed_by IS NOT NULL \
           AND locked_until IS NOT NULL AND sent_at IS NULL AND failed_at IS NULL \
         UNION SELECT DISTINCT claimed_by FROM webhook_outbox WHERE claimed_by IS NOT NULL \
           AND locked_until IS NOT NULL AND delivered_at IS NULL AND dead_at IS NULL \
         UNION SELECT DISTINCT claimed_by FROM fetch_claims",
    )
    .fetch_all(p)
    .await?;
    let here = host();
    let mut released = 0;
    for dead in holders.iter().filter(|h| is_dead_here(h, &here)) {
        released += sqlx::query(
            "UPDATE outbox_mail SET locked_until = NULL, claimed_by = NULL \
             WHERE claimed_by = $1 AND sent_at IS NULL AND failed_at IS NULL",
        )
        .bind(dead)
        .execute(p)
        .await?
        .rows_affected();
        released += sqlx::query(
            "UPDATE webhook_outbox SET locked_until = NULL, claimed_by = NULL \
             WHERE claimed_by = $1 AND delivered_at IS NULL AND dead_at IS NULL",
        )
        .bind(dead)
        .execute(p)
        .await?
        .rows_affected();
        // the UIDs it was fetching: free to claim again at once
        released += sqlx::query("DELETE FROM fetch_claims WHERE claimed_by = $1")
            .bind(dead)
            .execute(p)
            .await?
            .rows_affected();
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (guichet run) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 5 0 987654 1000 10";
        assert_eq!(start_in_stat(stat), Some(987654));
        assert_eq!(start_in_stat("garbage"), None);
    }

    #[test]
    fn only_dead_daemons_of_this_host_are_dead_here() {
        let me = holder();
        let here = host();
        assert!(!is_dead_here(me, &here), "this process runs");
        let (host_and_pid, _) = me.rsplit_once('/').unwrap();
        // the same pid, started at another time: another process, dead
        assert!(is_dead_here(&format!("{host_and_pid}/1"), &here));
        // a pid that does not run
        assert!(is_dead_here(&format!("{here}/4194303/5"), &here));
        // another host's daemon: not ours to judge
        assert!(!is_dead_here("elsewhere/4194303/5", &here));
        assert!(!is_dead_here("nonsense", &here));
    }
}
