//! `guichet doctor` (issue 14) against the rig: a good settings file
//! passes every check (exit 0); each broken item fails, named, with a fix
//! (exit 1), in text and in `--json`.

mod harness;
mod receiver;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use harness::Desk;
use serde_json::Value;
use support::{guichet_bin, rig};

fn doctor(config: &Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(guichet_bin())
        .arg("--config")
        .arg(config)
        .arg("doctor")
        .args(args)
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test]
async fn doctor_passes_a_good_file_and_names_each_broken_item() {
    let r = rig();
    let hooks = receiver::Receiver::start();
    let desk = Desk::with(
        "",
        "",
        &format!(
            "[antivirus]\nclamd = \"tcp://{}:{}\"\n\n[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\n",
            r.clamd_host,
            r.clamd_port,
            hooks.url("/doctor")
        ),
    );
    let good = std::fs::read_to_string(&desk.config).unwrap();
    std::fs::set_permissions(&desk.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    // a fresh database is migrated by `guichet migrate` first
    assert!(desk.run(&["migrate"]).status.success());

    let (code, text) = doctor(&desk.config, &["--send"]);
    assert_eq!(code, 0, "a good file passes: {text}");
    for item in [
        "imap.dns",
        "imap.login",
        "imap.folder",
        "imap.idle",
        "smtp.mail_from",
        "antivirus.eicar",
        "database",
        "templates",
        "webhooks[0].send",
        "permissions",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(item)),
            "{item} checked:\n{text}"
        );
    }
    assert_eq!(hooks.to("/doctor").len(), 1, "--send posted the demo event");
    let (code, json) = doctor(&desk.config, &["--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(
        hooks.to("/doctor").len(),
        1,
        "nothing posted without --send"
    );

    let dir = desk.dir.path();
    std::fs::create_dir_all(dir.join("broken-templates/en")).unwrap();
    std::fs::write(
        dir.join("broken-templates/en/acknowledgement.txt"),
        "Subject: {{ oops\n\nbody\n",
    )
    .unwrap();
    let password = format!("password = \"{}\"", r.password);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a wrong IMAP password",
            good.replacen(&password, "password = \"wrong\"", 1),
            "imap.login",
        ),
        (
            "a folder that does not exist",
            good.replacen("poll_seconds = 1", "poll_seconds = 1\nfolder = \"Nope\"", 1),
            "imap.folder",
        ),
        (
            "an IMAP host that does not resolve",
            good.replacen(
                &format!(
                    "host = \"{}\"\nport = {}\ntls = \"none\"",
                    r.imap_host, r.imap_port
                ),
                "host = \"nowhere.invalid\"\ntls = \"implicit\"",
                1,
            ),
            "imap.dns",
        ),
        (
            "an SMTP port nobody listens on",
            good.replacen(&format!("port = {}", r.smtp_port), "port = 9", 1),
            "smtp.connect",
        ),
        (
            "clamd elsewhere",
            good.replacen(&format!(":{}\"", r.clamd_port), ":9\"", 1),
            "antivirus.ping",
        ),
        (
            "a webhook whose TLS fails",
            good.replacen(
                &hooks.url("/doctor"),
                &hooks.url("/doctor").replace("http://", "https://"),
                1,
            ),
            "webhooks[0].tls",
        ),
        (
            "a template that does not compile",
            good.replacen(
                "[attachments]",
                "templates_dir = \"broken-templates\"\n\n[attachments]",
                1,
            ),
            "templates",
        ),
        (
            "a placeholder left from a preset",
            good.replacen(
                &format!("host = \"{}\"", r.imap_host),
                "host = \"imap.example.com\"",
                1,
            ),
            "settings",
        ),
    ];
    for (case, text, item) in &cases {
        let path = dir.join("broken.toml");
        write_private(&path, text);
        let (code, out) = doctor(&path, &["--json"]);
        assert_eq!(code, 1, "{case}: exit 1\n{out}");
        let v: Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1])
            .unwrap_or_else(|e| panic!("{case}: {e}\n{out}"));
        let failed: Vec<&Value> = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .collect();
        assert!(
            failed
                .iter()
                .any(|c| c["item"] == *item && c["fix"].as_str().is_some_and(|f| !f.is_empty())),
            "{case}: {item} fails with a fix; failed: {failed:#?}"
        );
    }
    // a settings file holding secrets, readable by everyone
    std::fs::set_permissions(&desk.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = doctor(&desk.config, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("permissions")),
        "{out}"
    );
    assert!(out.contains("chmod 600"), "{out}");
}
