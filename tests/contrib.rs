//! The monitoring files in contrib/ (Grafana dashboard, Prometheus alert
//! rules) name only metrics the daemon exports.

use std::collections::BTreeSet;

use guichet::rules::health::HealthView;
use guichet::store::Store;
use guichet::workers::deliver::Delivered;
use guichet::workers::mailbox_pass::PassReport;
use guichet::workers::metrics::Metrics;

/// The metric names in `text` (`guichet_…`), as written.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("guichet_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

#[tokio::test]
async fn the_dashboard_and_alerts_use_exported_metrics() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let m = Metrics::default();
    m.mailbox_connected("s@imap/INBOX", true);
    m.mailbox_pass("s@imap/INBOX", &PassReport::default());
    m.mail_delivered(&Delivered::default());
    // with [antivirus] (nothing listens there): its gauge is exported
    let clamd = guichet::settings::ClamdAddress::Tcp {
        host: "127.0.0.1".into(),
        port: 1,
    };
    m.probe(&store, Some(&clamd)).await;
    let exported: BTreeSet<String> = m
        .render(&HealthView::default())
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/guichet-dashboard.json"
    ))
    .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() > 10));
    let alerts = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/prometheus/guichet-alerts.yml"
    ))
    .unwrap();
    for (file, text) in [("dashboard", &dashboard), ("alerts", &alerts)] {
        for name in named(text) {
            assert!(
                exported.contains(&name),
                "{file} names {name}, which the daemon does not export: {exported:?}"
            );
        }
    }
    for wanted in [
        "guichet_mailbox_last_success_age_seconds",
        "guichet_outbox_oldest_age_seconds",
        "guichet_dead_letters",
    ] {
        assert!(alerts.contains(wanted), "an alert on {wanted}");
    }
}
