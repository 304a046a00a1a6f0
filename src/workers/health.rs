//! The daemon's health, shared by its loops: passes failed by a store
//! fault are counted, the intake loop says when a store fault pauses it
//! and when it resumes; the `[metrics]` listener shows it
//! (`rules::health::answer`), and [`announce`] tells the webhook endpoints
//! that want `system.degraded` / `system.recovered`, once per change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::adapters::webhook_http::WebhookClient;
use crate::domain::Fault;
use crate::rules::health::{HealthView, Paused};
use crate::rules::webhooks::{self, SystemEvent};
use crate::settings::Settings;

/// Shared by the loops of one daemon, kept across SIGHUP reloads.
pub struct Health {
    errors: Mutex<HashMap<Fault, u64>>,
    paused: watch::Sender<Option<Paused>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            errors: Mutex::default(),
            paused: watch::Sender::new(None),
        }
    }
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    /// A pass failed because of this store fault.
    pub fn store_error(&self, fault: Fault) {
        *self
            .errors
            .lock()
            .expect("not poisoned")
            .entry(fault)
            .or_default() += 1;
    }

    /// Intake is paused (`Some`) or takes mail (`None`).
    pub fn set_paused(&self, paused: Option<Paused>) {
        self.paused.send_if_modified(|now| {
            let changed = *now != paused;
            *now = paused;
            changed
        });
    }

    pub fn paused(&self) -> Option<Paused> {
        *self.paused.borrow()
    }

    pub fn view(&self) -> HealthView {
        let errors = self.errors.lock().expect("not poisoned");
        HealthView {
            paused: self.paused(),
            store_errors: Fault::ALL
                .iter()
                .map(|f| (*f, errors.get(f).copied().unwrap_or(0)))
                .collect(),
        }
    }

    pub fn watch(&self) -> watch::Receiver<Option<Paused>> {
        self.paused.subscribe()
    }
}

/// Attempts per endpoint for one system event, and the waits between them.
const ATTEMPT_WAITS: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(10)];

/// Sends `system.degraded` when intake pauses and `system.recovered` when
/// it resumes, at most once per change, until `shutdown`. The store may be
/// what is failing, so these events are sent from memory, never queued:
/// one that no endpoint took after a few tries is logged and dropped.
pub async fn announce(
    health: Arc<Health>,
    settings: Arc<Settings>,
    client: WebhookClient,
    mut shutdown: watch::Receiver<bool>,
) {
    let wanted = |kind| settings.webhooks.iter().any(|w| w.wants(kind));
    if !wanted(crate::domain::EventKind::SystemDegraded)
        && !wanted(crate::domain::EventKind::SystemRecovered)
    {
        return;
    }
    let mut changes = health.watch();
    // the state when this starts (after a reload) was announced already
    let mut announced = *changes.borrow_and_update();
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let now = *changes.borrow_and_update();
        let event = match (announced, now) {
            (None, Some(p)) => webhooks::system_event(p.fault, p.since, None, rand::random()),
            (Some(p), None) => {
                webhooks::system_event(p.fault, p.since, Some(chrono::Utc::now()), rand::random())
            }
            // still paused (another fault, maybe), or still fine
            _ => continue,
        };
        announced = now;
        send(&settings, &client, &event, &mut shutdown).await;
    }
}

async fn send(
    settings: &Settings,
    client: &WebhookClient,
    event: &SystemEvent,
    shutdown: &mut watch::Receiver<bool>,
) {
    for (place, endpoint) in settings.webhooks.iter().enumerate() {
        if !endpoint.wants(event.kind) {
            continue;
        }
        let format = webhooks::resolve_format(endpoint.format, &endpoint.url);
        let body = match serde_json::to_vec(&webhooks::render_system(format, event)) {
            Ok(body) => body,
            Err(_) => continue,
        };
        let shown = webhooks::display_url(&endpoint.url);
        let mut waits = ATTEMPT_WAITS.iter();
        loop {
            let headers = webhooks::headers(
                &event.id,
                chrono::Utc::now().timestamp(),
                &body,
                endpoint.secret.as_ref().map(|s| s.expose()),
            );
            let error = match client.post(&endpoint.url, &body, &headers).await {
                Ok(a) if (200..300).contains(&a.status) => {
                    tracing::info!(event = %event.kind, id = %event.id, endpoint = %shown, webhook = place, "system event delivered");
                    break;
                }
                Ok(a) => format!("HTTP {}", a.status),
                Err(e) => e,
            };
            let Some(wait) = waits.next() else {
                tracing::warn!(event = %event.kind, endpoint = %shown, webhook = place, %error, "system event not delivered; dropped (it is not queued)");
                break;
            };
            tokio::select! {
                _ = tokio::time::sleep(*wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn counts_and_pause_show_in_the_view_and_changes_are_seen_once() {
        let h = Health::new();
        let mut rx = h.watch();
        h.store_error(Fault::DiskFull);
        h.store_error(Fault::DiskFull);
        h.store_error(Fault::Unavailable);
        let v = h.view();
        assert_eq!(v.paused, None);
        assert!(v.store_errors.contains(&(Fault::DiskFull, 2)));
        assert!(v.store_errors.contains(&(Fault::Unavailable, 1)));
        assert!(v.store_errors.contains(&(Fault::ReadOnly, 0)));
        assert!(!rx.has_changed().unwrap());
        let p = Paused {
            fault: Fault::DiskFull,
            since: Utc::now(),
        };
        h.set_paused(Some(p));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        h.set_paused(Some(p));
        assert!(!rx.has_changed().unwrap(), "the same state is no change");
        assert_eq!(h.view().paused, Some(p));
        h.set_paused(None);
        assert!(rx.has_changed().unwrap());
    }
}
