//! The service files shipped in the repository: the systemd unit passes
//! `systemd-analyze verify` and scores well in `systemd-analyze
//! security`.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/systemd/guichet.service"
);

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// The unit with its ExecStart on the binary under test (verify checks
/// that the program exists).
fn unit_here(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(UNIT)
        .unwrap()
        .replace("/usr/bin/guichet", env!("CARGO_BIN_EXE_guichet"));
    let path = dir.join("guichet.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_unit_says_what_the_service_needs() {
    let text = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=guichet",
        "ConfigurationDirectory=guichet",
        "LoadCredential=guichet.secret:/etc/guichet/guichet.secret",
        "WatchdogSec=15min",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "User=guichet",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in the unit");
    }
}

#[test]
fn the_unit_passes_systemd_analyze_verify_and_security() {
    if !have("systemd-analyze") {
        eprintln!(
            "SKIPPED: systemd-analyze is not installed (apt-get install systemd); the unit was not verified"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_here(dir.path());
    // --man=no: the man page comes with the package, not with the tree
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(said.trim().is_empty(), "no warning: {said}");

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let score: f64 = said
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for guichet.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no score in: {said}"));
    // the README gives the score: keep them in step
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!("exposure level {score:.1}")),
        "README says `exposure level {score:.1}`"
    );
    assert!(score <= 2.0, "exposure {score} (1.1 when written)");
}
