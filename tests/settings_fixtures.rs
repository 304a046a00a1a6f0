//! Settings fixtures: every `tests/fixtures/settings/bad/*.toml` is refused
//! with exactly the report in the `.expected` file beside it, and SPEC.md's
//! own example file loads to the values SPEC.md documents.
//!
//! Reports are made stable by writing the fixture's folder as `$DIR`. On a
//! mismatch the actual report is written to `X.failed` and the test panics
//! with its path.

use std::env::VarError;
use std::path::{Path, PathBuf};

use guichet::domain::EventKind;
use guichet::settings::{
    AutoCloseScope, ClamdAddress, Language, ReopenWindow, SecretSource, TlsMode, WebhookFormat,
    load_str_with_env, render_masked, warnings,
};

const SECRET: &str = "fixture-hmac-secret-0123456789";
const IMAP_PASSWORD: &str = "fixture-imap-password";
const SMTP_PASSWORD: &str = "fixture-smtp-password";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The fixtures' environment (the process environment is never touched).
fn env(name: &str) -> Result<String, VarError> {
    match name {
        "GUICHET_SECRET" => Ok(SECRET.into()),
        "GUICHET_IMAP_PASSWORD" => Ok(IMAP_PASSWORD.into()),
        "GUICHET_SMTP_PASSWORD" => Ok(SMTP_PASSWORD.into()),
        "GUICHET_WEBHOOK_SECRET" => Ok(WEBHOOK_SECRET.into()),
        "GUICHET_EMPTY" => Ok(String::new()),
        "GUICHET_SHORT" => Ok("tiny-pw".into()),
        _ => Err(VarError::NotPresent),
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/settings")
}

/// Compares with `expected_path`; on mismatch writes `.failed` and panics.
fn compare(actual: &str, expected_path: &Path) -> Result<(), String> {
    let failed = expected_path.with_extension("failed");
    match std::fs::read_to_string(expected_path) {
        Ok(expected) if expected == actual => {
            let _ = std::fs::remove_file(&failed);
            Ok(())
        }
        found => {
            std::fs::write(&failed, actual).unwrap();
            Err(match found {
                Ok(_) => format!(
                    "{} differs: see {}",
                    expected_path.display(),
                    failed.display()
                ),
                Err(_) => format!(
                    "{} is missing: see {}",
                    expected_path.display(),
                    failed.display()
                ),
            })
        }
    }
}

#[test]
fn bad_settings_files_give_their_expected_reports() {
    let dir = fixtures().join("bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "only {} bad fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let report = match load_str_with_env(&text, path, &env) {
            Ok(_) => format!("ACCEPTED: {} should have been refused\n", path.display()),
            Err(e) => {
                let name = path.file_name().unwrap().to_str().unwrap();
                format!("{e}\n")
                    .replace(path.to_str().unwrap(), name)
                    .replace(dir.to_str().unwrap(), "$DIR")
            }
        };
        for secret in [
            SECRET,
            IMAP_PASSWORD,
            SMTP_PASSWORD,
            WEBHOOK_SECRET,
            "tiny-pw",
            "literal-secret-value",
        ] {
            assert!(
                !report.contains(secret),
                "{}: secret leaked:\n{report}",
                path.display()
            );
        }
        if let Err(message) = compare(&report, &path.with_extension("expected")) {
            failures.push(message);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_spec_example_loads_with_the_documented_values() {
    let path = fixtures().join("spec_example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // as SPEC writes it, its example.com names are placeholders: refused,
    // each with its line, and nothing else is wrong with it
    let refused = load_str_with_env(&text, &path, &env).expect_err("placeholders");
    assert!(
        refused
            .problems
            .iter()
            .all(|p| p.line > 0 && p.message.starts_with("placeholder")),
        "{refused}"
    );
    assert_eq!(refused.problems.len(), 9, "{refused}");
    // as an admin fills it in
    let text = text.replace("example.com", "mycorp.test");
    let s = load_str_with_env(&text, &path, &env).unwrap_or_else(|e| panic!("{e}"));
    let dir = fixtures();

    let h = &s.helpdesk;
    assert_eq!(h.auto_close_days, 7);
    assert_eq!(h.auto_close_scope, AutoCloseScope::AwaitingCustomer);
    assert_eq!(h.reopen_days, ReopenWindow::Days(7));
    assert_eq!(h.subject_tag, "[#{id}]");
    assert_eq!(h.language, Language::En);
    assert_eq!(h.secret.expose(), SECRET);
    assert_eq!(h.secret_source, SecretSource::Env("GUICHET_SECRET".into()));

    let a = &s.attachments;
    assert!(a.enabled);
    assert_eq!(a.max_size_mb, 5);
    assert_eq!(
        a.allowed_extensions,
        ["jpg", "jpeg", "png", "doc", "docx", "xls", "xlsx"]
    );
    assert_eq!(a.storage_dir, dir.join("data/attachments"));

    let av = s.antivirus.as_ref().expect("[antivirus] is in the example");
    assert_eq!(
        av.clamd,
        ClamdAddress::Tcp {
            host: "127.0.0.1".into(),
            port: 3310
        }
    );
    assert_eq!(av.timeout_seconds, 30);

    let i = &s.imap;
    assert_eq!(
        (i.host.as_str(), i.port, i.tls),
        ("imap.mycorp.test", 993, TlsMode::Implicit)
    );
    assert_eq!(i.username, "support@mycorp.test");
    assert_eq!(i.password.expose(), IMAP_PASSWORD);
    assert_eq!(
        i.password_source,
        SecretSource::Env("GUICHET_IMAP_PASSWORD".into())
    );
    assert_eq!(
        (i.folder.as_str(), i.poll_seconds, i.idle),
        ("INBOX", 60, true)
    );

    let m = &s.smtp;
    assert_eq!(
        (m.host.as_str(), m.port, m.tls),
        ("smtp.mycorp.test", 465, TlsMode::Implicit)
    );
    assert_eq!(m.username.as_deref(), Some("support@mycorp.test"));
    assert_eq!(m.password.as_ref().map(|p| p.expose()), Some(SMTP_PASSWORD));
    assert_eq!(m.from.to_string(), "Example Support <support@mycorp.test>");

    assert_eq!(
        s.database.url,
        format!("sqlite://{}", dir.join("data/guichet.db").display())
    );
    assert_eq!(s.trust.authserv_ids, ["mx.mycorp.test"]);

    assert_eq!(s.departments.len(), 1);
    let d = &s.departments[0];
    assert_eq!(
        (d.name.as_str(), d.address.as_str(), d.default),
        ("Technique", "support@mycorp.test", true)
    );
    let agents: Vec<&str> = d.agents.iter().map(|a| a.as_str()).collect();
    assert_eq!(agents, ["alice@mycorp.test", "bob@mycorp.test"]);

    assert_eq!(s.webhooks.len(), 1);
    let w = &s.webhooks[0];
    assert_eq!(w.url, "https://discord.com/api/webhooks/123/abc");
    assert_eq!(w.format, WebhookFormat::Auto);
    assert_eq!(
        w.events,
        [EventKind::TicketCreated, EventKind::TicketClosed]
    );
    assert_eq!(w.secret.as_ref().map(|p| p.expose()), Some(WEBHOOK_SECRET));

    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));

    // What check-config prints for it, with the fixture folder as $DIR.
    let rendered = render_masked(&s).replace(dir.to_str().unwrap(), "$DIR");
    for secret in [SECRET, IMAP_PASSWORD, SMTP_PASSWORD, WEBHOOK_SECRET] {
        assert!(!rendered.contains(secret), "{secret} leaked:\n{rendered}");
    }
    if let Err(message) = compare(&rendered, &dir.join("spec_example.rendered")) {
        panic!("{message}");
    }
}
