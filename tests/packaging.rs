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

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The shipped sample is exactly what `init` writes for /etc/guichet.
#[test]
fn the_packaged_settings_are_what_init_writes_under_etc() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, said) = run(Command::new(env!("CARGO_BIN_EXE_guichet")).args([
        "init",
        "--preset",
        "startup",
        "--state-dir",
        "/var/lib/guichet",
        "--output",
        dir.path().join("guichet.toml").to_str().unwrap(),
    ]));
    assert!(ok, "{said}");
    let written = std::fs::read_to_string(dir.path().join("guichet.toml")).unwrap();
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/debian/guichet.toml"
    ))
    .unwrap();
    assert!(
        written == shipped,
        "contrib/debian/guichet.toml is out of date: `guichet init --preset startup --state-dir /var/lib/guichet --output contrib/debian/guichet.toml --force`"
    );
    assert!(shipped.contains("\nstate_dir = \"/var/lib/guichet\"\n"));
}

/// Builds the .deb (cargo-deb, the debug binary the tests use), installs
/// it with dpkg, runs the installed `guichet`, and removes it.
#[test]
fn the_deb_installs_runs_and_removes() {
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !have("dpkg") {
        eprintln!("SKIPPED: installing a .deb needs root and dpkg");
        return;
    }
    if !run(Command::new("cargo").args(["deb", "--version"])).0 {
        eprintln!(
            "SKIPPED: cargo-deb is not installed (scripts/test.sh installs it: cargo install cargo-deb --locked)"
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let (ok, said) = run(Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/package-deb.sh"
        ))
        .args(["--debug", "--no-build", "--output"])
        .arg(out.path()));
    assert!(ok, "package-deb.sh: {said}");
    let deb = said.lines().last().unwrap().trim().to_string();
    assert!(deb.ends_with(".deb"), "{said}");

    let (ok, said) = run(Command::new("dpkg").args(["-i", &deb]));
    assert!(ok, "dpkg -i: {said}");
    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = Command::new("dpkg").args(["--purge", "guichet"]).output();
        }
    }
    let _purge = Purge;

    let (ok, said) = run(Command::new("/usr/bin/guichet").arg("--version"));
    assert!(ok && said.starts_with("guichet "), "{said}");
    for path in [
        "/lib/systemd/system/guichet.service",
        "/usr/share/man/man1/guichet.1.gz",
        "/usr/share/man/man1/guichet-outbox.1.gz",
        "/usr/share/bash-completion/completions/guichet",
        "/usr/share/zsh/vendor-completions/_guichet",
        "/usr/share/fish/vendor_completions.d/guichet.fish",
        "/etc/guichet/guichet.secret",
        "/etc/guichet/environment",
    ] {
        assert!(Path::new(path).is_file(), "{path} installed");
    }
    let (ok, said) = run(Command::new("getent").args(["passwd", "guichet"]));
    assert!(
        ok && said.contains("/var/lib/guichet"),
        "the system user: {said}"
    );
    let (ok, said) = run(Command::new("stat").args(["-c", "%U %a", "/var/lib/guichet"]));
    assert!(ok && said.trim() == "guichet 700", "{said}");
    if have("systemd-analyze") {
        let (ok, said) = run(Command::new("systemd-analyze").args([
            "verify",
            "--man=no",
            "/lib/systemd/system/guichet.service",
        ]));
        assert!(ok, "the installed unit: {said}");
    }

    // check-config on the installed sample: only the preset's placeholders
    // are left to fill in
    let check = |config: &str| {
        run(Command::new("/usr/bin/guichet")
            .args(["--config", config, "check-config"])
            .env("GUICHET_IMAP_PASSWORD", "imap-pass")
            .env("GUICHET_SMTP_PASSWORD", "smtp-pass")
            .env_remove("CREDENTIALS_DIRECTORY"))
    };
    let (ok, said) = check("/etc/guichet/guichet.toml");
    assert!(!ok, "{said}");
    let problems: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("guichet.toml:"))
        .collect();
    assert!(!problems.is_empty(), "{said}");
    for p in &problems {
        assert!(p.contains("placeholder"), "only placeholders: {p}\n{said}");
    }
    let filled = out.path().join("guichet.toml");
    std::fs::write(
        &filled,
        std::fs::read_to_string("/etc/guichet/guichet.toml")
            .unwrap()
            .replace("example.com", "mycorp.test")
            .replace("ID/TOKEN", "1234/s3cr3t")
            .replace(
                "secret_file = \"guichet.secret\"",
                "secret_file = \"/etc/guichet/guichet.secret\"",
            ),
    )
    .unwrap();
    let (ok, said) = check(filled.to_str().unwrap());
    assert!(ok, "the sample, filled in: {said}");
    assert!(said.contains("/var/lib/guichet/guichet.db"), "{said}");

    let (ok, said) = run(Command::new("dpkg").args(["--purge", "guichet"]));
    assert!(ok, "dpkg --purge: {said}");
    assert!(!Path::new("/usr/bin/guichet").exists());
    assert!(!Path::new("/lib/systemd/system/guichet.service").exists());
}
