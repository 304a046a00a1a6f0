//! The `guichet` binary: parses the command line and hands over to
//! [`guichet::cli`]. No logic here, but where it runs.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // one crypto provider for every TLS connection (IMAP, SMTP, HTTPS)
    let _ = rustls::crypto::ring::default_provider().install_default();
    stay_on_one_cpu();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(guichet::cli::main_with(guichet::cli::Cli::parse()))
}

/// Guichet's work is sequential (one mailbox, one SQLite writer): a task
/// and SQLite's worker thread hand every statement back and forth. Spread
/// over several CPUs, each hand-off wakes another CPU (an inter-processor
/// interrupt, a VM exit on a virtual machine): on the benchmark's 2-vCPU VM
/// that doubled the CPU time and the wall time of an ingest. Kept on the
/// CPU it starts on (all threads inherit this, the runtime's too), a
/// hand-off is a plain context switch. A narrower affinity set by the
/// caller (taskset, systemd's CPUAffinity=) is kept as it is, and
/// `GUICHET_ALL_CPUS=1` leaves the process on every CPU.
fn stay_on_one_cpu() {
    if std::env::var_os("GUICHET_ALL_CPUS").is_some_and(|v| v == "1") {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: plain libc calls on a zeroed cpu_set_t of the right size,
    // for the calling thread only (pid 0).
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 || libc::CPU_COUNT(&allowed) <= 1 {
            return;
        }
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut one);
        let _ = libc::sched_setaffinity(0, size, &one);
    }
}
