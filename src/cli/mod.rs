//! The `guichet` command line (SPEC "Command line"): parsing with clap,
//! then one function per subcommand. Exit codes: 0 success, 1 failure,
//! 2 invalid settings or usage, 3 not found.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use crate::settings::presets::Preset;
use crate::settings::{self, Settings};
use crate::store::Store;
use crate::workers::daemon::{self, Clock, Runtime};

mod customers;
mod outbox;
mod show;

#[derive(Debug, Parser)]
#[command(
    name = "guichet",
    version,
    about = "Email-gateway helpdesk daemon: mail in, tickets, replies out, webhooks"
)]
pub struct Cli {
    /// Settings file [default: $GUICHET_CONFIG, else ./guichet.toml]
    #[arg(
        long,
        global = true,
        env = "GUICHET_CONFIG",
        default_value = "guichet.toml"
    )]
    pub config: PathBuf,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented settings file from one of the seed's presets
    Init {
        #[arg(long, value_enum)]
        preset: Preset,
        /// Where to write it [default: the --config path]
        #[arg(long)]
        output: Option<PathBuf>,
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Check the settings file: every problem with its line, secrets masked
    CheckConfig,
    /// Run the daemon (IMAP in, SMTP out, webhooks, auto-close)
    Run {
        /// One pass over the mailbox, due lifecycle work and deliveries, then exit
        #[arg(long)]
        once: bool,
        /// The clock for this pass (RFC 3339), for tests and dry runs
        #[arg(long, value_parser = parse_rfc3339)]
        now: Option<DateTime<Utc>>,
        /// With --once: say what the pass would take and send, change nothing
        #[arg(long, requires = "once")]
        dry_run: bool,
    },
    /// Turn existing mail into tickets without sending anything or firing
    /// webhook events (history: past conversations, so that replies to
    /// them land in the right ticket)
    Import {
        /// Folder to read [default: imap.folder]
        #[arg(long)]
        folder: Option<String>,
        /// Only messages that arrived on or after this day (YYYY-MM-DD)
        #[arg(long, value_parser = parse_day)]
        since: Option<NaiveDate>,
    },
    /// List or show tickets
    Tickets {
        #[command(subcommand)]
        command: TicketsCommand,
    },
    /// Dry run of one message against the current store and settings: every
    /// decision in order, nothing changed
    Explain {
        /// The message file (.eml)
        file: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long, value_parser = parse_rfc3339)]
        now: Option<DateTime<Utc>>,
    },
    /// Webhook endpoints
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Help-desk metrics for a period
    Stats {
        /// Start of the period (YYYY-MM-DD or RFC 3339) [default: everything]
        #[arg(long, value_parser = parse_date)]
        since: Option<DateTime<Utc>>,
        #[arg(long)]
        json: bool,
        #[arg(long, value_parser = parse_rfc3339)]
        now: Option<DateTime<Utc>>,
    },
    /// Remove stored files of tickets closed longer than the retention
    Cleanup {
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_parser = parse_rfc3339)]
        now: Option<DateTime<Utc>>,
    },
    /// What waits to be sent, and each webhook endpoint's state
    /// (healthy, failing, paused) with its backlog
    Outbox {
        #[arg(long)]
        json: bool,
    },
    /// Apply the database migrations
    Migrate,
    /// One person's data: export it, or erase it (GDPR articles 15, 17, 20)
    Customers {
        #[command(subcommand)]
        command: CustomersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Write everything about ADDRESS to the folder PATH: export.json, the
    /// original mails they sent, their files
    Export {
        address: String,
        #[arg(long)]
        output: PathBuf,
    },
    /// Erase ADDRESS: their tickets whole, their messages in other tickets
    /// replaced by a placeholder, their address off every ticket. Without
    /// --yes, only shows what would go
    Erase {
        address: String,
        /// Only show what would go (the default without --yes)
        #[arg(long)]
        dry_run: bool,
        /// Erase for real
        #[arg(long, conflicts_with = "dry_run")]
        yes: bool,
        #[arg(long, value_parser = parse_rfc3339)]
        now: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TicketsCommand {
    /// All tickets, oldest first
    List {
        /// open | awaiting_customer | closed | resolved
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One ticket with its messages, attachments' verdicts and events
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Messages stored raw that could not be placed in a ticket
    Problems {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// POST a demonstration event to every endpoint (or --url) and show the answer
    Test {
        #[arg(long)]
        url: Option<String>,
    },
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time (2026-11-25T10:00:00Z): {e}"))
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("`{s}` is not a day (2024-01-31): {e}"))
}

fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    parse_rfc3339(s)
}

/// A failure with its exit code.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            error: e.into(),
        }
    }
}

fn fail(code: u8, error: anyhow::Error) -> Failure {
    Failure { code, error }
}

/// Libraries whose debug/trace output carries protocol lines, and so
/// credentials: see [`init_logging`].
pub const PROTOCOL_LOG_TARGETS: &[&str] = &[
    "lettre",
    "async_imap",
    "imap_proto",
    "hyper",
    "h2",
    "reqwest",
    "rustls",
    "tokio_rustls",
];

/// Writes 32 random bytes (hex) to `path`, readable by its owner only,
/// unless the file exists: a new key would invalidate every reply token
/// already sent, so an existing one is kept. True when written.
fn write_new_secret(path: &Path) -> std::io::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    let key: [u8; 32] = rand::random();
    writeln!(file, "{}", hex::encode(key))?;
    file.sync_all()?;
    Ok(true)
}

pub fn init_logging(format: LogFormat) {
    let asked = std::env::var("GUICHET_LOG").unwrap_or_default();
    let mut filter = tracing_subscriber::EnvFilter::try_new(&asked)
        .ok()
        .filter(|_| !asked.trim().is_empty())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // The protocol logs of the mail libraries show credentials (lettre's
    // `AUTH PLAIN <base64>` at debug, async-imap's `LOGIN "user" "pw"` at
    // trace): off at every level unless asked for by their own name.
    for target in PROTOCOL_LOG_TARGETS {
        if !asked.contains(target)
            && let Ok(directive) = format!("{target}=warn").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub async fn main_with(cli: Cli) -> ExitCode {
    init_logging(cli.log_format);
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, error }) => {
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}

fn load_settings(path: &Path) -> Result<Settings, Failure> {
    settings::load(path).map_err(|e| fail(2, anyhow::anyhow!("invalid settings:\n{e}")))
}

async fn open_store(s: &Settings) -> Result<Store, Failure> {
    let store = Store::connect(&s.database.url).await?;
    store.migrate().await?;
    Ok(store)
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init {
            preset,
            output,
            force,
        } => {
            let path = output.unwrap_or(cli.config);
            if path.exists() && !force {
                return Err(fail(
                    1,
                    anyhow::anyhow!(
                        "{} exists already (use --force to overwrite it)",
                        path.display()
                    ),
                ));
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            std::fs::write(&path, settings::presets::render(preset))
                .with_context(|| format!("cannot write {}", path.display()))?;
            let secret = path.with_file_name("guichet.secret");
            let made = write_new_secret(&secret)
                .with_context(|| format!("cannot write {}", secret.display()))?;
            println!(
                "wrote {} (preset {:?}); {} {}; replace the example.com placeholders, then run `guichet check-config`",
                path.display(),
                preset,
                if made {
                    "wrote a new random reply-token secret to"
                } else {
                    "kept the existing secret"
                },
                secret.display(),
            );
            Ok(())
        }
        Command::CheckConfig => {
            let s = load_settings(&cli.config)?;
            print!("{}", settings::render_masked(&s));
            for w in settings::warnings(&s) {
                println!("warning: {w}");
            }
            println!("{}: valid", cli.config.display());
            Ok(())
        }
        Command::Migrate => {
            let s = load_settings(&cli.config)?;
            let store = open_store(&s).await?;
            println!("database up to date ({})", store.backend());
            Ok(())
        }
        Command::Run { once, now, dry_run } => {
            let s = load_settings(&cli.config)?;
            let clock = now.map(Clock::Fixed).unwrap_or(Clock::System);
            if dry_run {
                let rt = Runtime::start(s, clock).await?;
                let report = daemon::dry_run_pass(&rt).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                rt.store.close().await;
                Ok(())
            } else if once {
                let rt = Runtime::start(s, clock).await?;
                daemon::run_once(&rt).await?;
                rt.store.close().await;
                Ok(())
            } else {
                run_daemon(&cli.config, s, clock).await
            }
        }
        Command::Import { folder, since } => {
            let s = load_settings(&cli.config)?;
            let rt = Runtime::start(s, Clock::System).await?;
            let report = daemon::import(&rt, folder.as_deref(), since).await?;
            println!("{}", serde_json::to_string(&report)?);
            rt.store.close().await;
            Ok(())
        }
        Command::Tickets { command } => {
            let s = load_settings(&cli.config)?;
            let store = open_store(&s).await?;
            match command {
                TicketsCommand::List { status, json } => {
                    show::list(&store, status.as_deref(), json).await
                }
                TicketsCommand::Show { id, json } => show::show(&store, id, json).await,
                TicketsCommand::Problems { json } => show::problems(&store, json).await,
            }
        }
        Command::Explain { file, json, now } => {
            let s = load_settings(&cli.config)?;
            let raw =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            show::explain(&s, &raw, json, now.unwrap_or_else(Utc::now)).await
        }
        Command::Webhook {
            command: WebhookCommand::Test { url },
        } => {
            let s = load_settings(&cli.config)?;
            show::webhook_test(&s, url.as_deref()).await
        }
        Command::Stats { since, json, now } => {
            let s = load_settings(&cli.config)?;
            let store = open_store(&s).await?;
            show::stats(&store, &s, since, now.unwrap_or_else(Utc::now), json).await
        }
        Command::Outbox { json } => {
            let s = load_settings(&cli.config)?;
            let store = open_store(&s).await?;
            outbox::show(&store, &s, json).await
        }
        Command::Customers { command } => {
            let s = load_settings(&cli.config)?;
            let store = open_store(&s).await?;
            let done = match command {
                CustomersCommand::Export { address, output } => {
                    customers::export(&store, &s, &address, &output).await
                }
                CustomersCommand::Erase {
                    address,
                    dry_run,
                    yes,
                    now,
                } => {
                    customers::erase(
                        &store,
                        &s,
                        &address,
                        yes && !dry_run,
                        now.unwrap_or_else(Utc::now),
                    )
                    .await
                }
            };
            store.close().await;
            done
        }
        Command::Cleanup { dry_run, now } => {
            let s = load_settings(&cli.config)?;
            let store = open_store(&s).await?;
            show::cleanup(&store, &s, now.unwrap_or_else(Utc::now), dry_run).await
        }
    }
}

/// How long SIGTERM (or a reload) waits for the loops to stop.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// The daemon under signals: SIGTERM/Ctrl-C stop it cleanly; SIGHUP loads
/// the settings again and restarts the loops with them, or keeps the old
/// ones (and says why) when the file is invalid.
async fn run_daemon(config: &Path, mut s: Settings, clock: Clock) -> Result<(), Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    // store errors counted and a pause in force outlive a reload
    let health = crate::workers::health::Health::new();
    let mut next: Option<Runtime> = None;
    loop {
        let mut rt = match next.take() {
            Some(rt) => rt,
            None => Runtime::start(s.clone(), clock).await?,
        };
        rt.health = health.clone();
        let rt = Arc::new(rt);
        let (stop, stopped) = watch::channel(false);
        let mut task = tokio::spawn(daemon::run_forever(rt.clone(), stopped));
        tracing::info!(config = %config.display(), "guichet running");
        let reload = loop {
            tokio::select! {
                r = &mut task => {
                    r.context("daemon task panicked")??;
                    return Ok(());
                }
                _ = term.recv() => break None,
                _ = tokio::signal::ctrl_c() => break None,
                _ = hup.recv() => match settings::load(config) {
                    // a file that loads must also start (templates that
                    // compile, a database that answers, CA files the TLS
                    // library takes) before the old settings are let go
                    Ok(new) => match Runtime::start(new.clone(), clock).await {
                        Ok(started) => break Some((new, started)),
                        Err(e) => tracing::error!(error = format!("{e:#}"), "SIGHUP: the new settings cannot start, keeping the old settings"),
                    },
                    Err(e) => tracing::error!("SIGHUP: the settings file is invalid, keeping the old settings:\n{e}"),
                },
            }
        };
        let _ = stop.send(true);
        tracing::info!("stopping: finishing the message in hand");
        // bounded: a systemd stop timeout must never find claims leased
        match tokio::time::timeout(STOP_GRACE, &mut task).await {
            Ok(joined) => joined.context("daemon task panicked")??,
            Err(_) => {
                task.abort();
                tracing::warn!(
                    "the daemon's loops did not stop within {} s: stopping anyway (what they held stays due)",
                    STOP_GRACE.as_secs()
                );
            }
        }
        rt.store.close().await;
        match reload {
            Some((new, started)) => {
                tracing::info!("SIGHUP: settings reloaded");
                s = new;
                next = Some(started);
            }
            None => {
                tracing::info!("stopped");
                return Ok(());
            }
        }
    }
}
