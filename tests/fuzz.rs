//! The fuzz loop (issue 13), briefly: `guichet fuzz` mutates real mails
//! (the repository's fixtures and, when present, ../shared/corpus) and
//! runs each through the inbound path as a dry run; no input may panic or
//! hang. scripts/soak.sh runs it over a million inputs; here a few
//! thousand, so that a regression shows in CI. Every crash it ever found
//! is a fixture in tests/fixtures/fuzz-crashes, replayed here through
//! `guichet explain`.

mod support;

use std::path::Path;
use std::process::Command;

use support::guichet_bin;

#[test]
fn a_few_thousand_mutated_mails_pass_the_inbound_path_without_a_panic_or_a_hang() {
    let crashes = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(guichet_bin());
    cmd.args(["fuzz", "--inputs", "2000", "--seed", "13", "--crashes"])
        .arg(crashes.path())
        .arg("tests/fixtures");
    let corpus = Path::new("../shared/corpus");
    if corpus.is_dir() {
        cmd.arg(corpus);
    } else {
        eprintln!("../shared/corpus is absent: seeds are the repository's fixtures only");
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fuzz failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["inputs"], 2000);
    assert_eq!(report["panics"], 0, "{report}");
    assert_eq!(report["hangs"], 0, "{report}");
    assert!(report["seeds"].as_u64().unwrap() >= 10, "{report}");
}

#[test]
fn every_crash_the_fuzz_loop_found_is_a_fixture_handled_without_a_panic() {
    let dir = Path::new("tests/fixtures/fuzz-crashes");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("eml") {
            continue;
        }
        let mut cmd = Command::new(guichet_bin());
        cmd.args(["fuzz", "--inputs", "0", "--crashes", "/nonexistent"])
            .arg(&path);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    eprintln!("{n} crash fixture(s) replayed");
}
