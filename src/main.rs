//! The `guichet` binary: parses the command line and hands over to
//! [`guichet::cli`]. No logic here, but where it runs.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Everything Guichet creates (the database and its journal, stored
    // files, the secret `init` writes) holds customers' mail: private to
    // its user, whatever umask it was started with.
    // SAFETY: umask only changes this process's file creation mask.
    unsafe {
        libc::umask(0o077);
    }
    // one crypto provider for every TLS connection (IMAP, SMTP, HTTPS)
    let _ = rustls::crypto::ring::default_provider().install_default();
    stay_on_one_cpu();
    give_big_buffers_back();
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

/// A big message makes a few big buffers one after the other (its bytes,
/// a file, the agents' copy that carries the file). glibc raises its mmap
/// threshold to the size of the first one freed (up to 32 MB), and the
/// next ones then come from the heap, which keeps their memory after they
/// are freed: a 25 MB attachment stayed in memory once more than needed.
/// A fixed threshold (which also turns that adjustment off) gives every
/// buffer over 1 MiB back to the system when it is freed.
fn give_big_buffers_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
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
