//! The command line of a benchmark run with `harness = false`, shared by
//! the benches that include it (`#[path = "common/args.rs"] mod args;`).

/// The arguments when cargo runs the bench (`cargo bench` passes
/// `--bench`); `None` under `cargo test --all-targets`, after saying how to
/// run it, so that the test run stays fast.
pub fn bench_args(name: &str) -> Option<Vec<String>> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") {
        Some(args)
    } else {
        println!("{name} benchmark: run it with `cargo bench --bench {name}`");
        None
    }
}

/// The value after `name`, or `default` when it is absent or unreadable.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
