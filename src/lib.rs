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

//! # Who may use whom
//! Each layer uses only those before it, so that every decision can be
//! read and tested without a network (the test below reads the `use`
//! lines and fails on a new exception):
//! - `domain`: nothing of ours;
//! - `settings`: `domain`;
//! - `rules`: `domain`, `settings`;
//! - `mail`: `domain`, `settings`, `rules`;
//! - `adapters`, `store`: `domain`, `settings` (they carry bytes, decide
//!   nothing); three exceptions, `adapters::webhook_http` checks a URL with
//!   `rules::webhooks`'s policy, `adapters::health_http` serves the
//!   `rules::health::Answer` it is handed, and `store` gives the SQLite
//!   files root made to the state folder's owner as the file store does
//!   (`adapters::ownership`);
//! - `workers`: all of the above; `cli`: everything.

pub mod adapters;
pub mod cli;
pub mod domain;
pub mod mail;
pub mod rules;
pub mod settings;
pub mod store;
pub mod workers;

#[cfg(test)]
mod layering_tests {
    use std::path::Path;

    /// The modules each layer may name (`crate::X`), outside its tests.
    const ALLOWED: &[(&str, &[&str])] = &[
        ("domain", &[]),
        ("settings", &["domain", "settings"]),
        ("rules", &["domain", "settings", "rules"]),
        ("mail", &["domain", "settings", "rules", "mail"]),
        ("adapters", &["domain", "settings", "adapters"]),
        ("store", &["domain", "store"]),
        (
            "workers",
            &[
                "domain", "settings", "rules", "mail", "adapters", "store", "workers",
            ],
        ),
    ];
    /// Known exceptions: (file, module it names, why).
    const EXCEPTIONS: &[(&str, &str)] = &[
        ("src/adapters/webhook_http.rs", "rules"),
        ("src/adapters/health_http.rs", "rules"),
        ("src/store/mod.rs", "adapters"),
    ];

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn every_layer_uses_only_the_layers_before_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut all = Vec::new();
        files(&root.join("src"), &mut all);
        let mut broken = Vec::new();
        for path in all {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            let layer = rel
                .trim_start_matches("src/")
                .split(['/', '.'])
                .next()
                .unwrap()
                .to_string();
            let Some((_, allowed)) = ALLOWED.iter().find(|(l, _)| *l == layer) else {
                continue;
            };
            if rel.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for (i, _) in line.match_indices("crate::") {
                    let used: String = line[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !allowed.contains(&used.as_str())
                        && !EXCEPTIONS.contains(&(rel.as_str(), used.as_str()))
                    {
                        broken.push(format!("{rel}:{}: {layer} uses crate::{used}", n + 1));
                    }
                }
            }
        }
        assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
    }
}
