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

mod backup;
mod customers;
mod doctor;
mod manual;
mod outbox;
mod readonly;
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
        /// The preset to start from: startup (small team), enterprise
        /// (departments, PostgreSQL), technical (developers' product),
        /// secure (strict attachment policy, clamd)
        #[arg(long, value_enum)]
        preset: Preset,
        /// Where to write it [default: the --config path]
        #[arg(long)]
        output: Option<PathBuf>,
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
        /// Where the database and stored files go [default: /var/lib/guichet
        /// when the file is written under /etc, else `data` beside it]
        #[arg(long)]
        state_dir: Option<PathBuf>,
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
        /// Which mailbox: `imap` (the [imap] table) or a `[[mailboxes]]` name
        #[arg(long, default_value = "imap")]
        mailbox: String,
        /// Folder to read [default: the mailbox's folder]
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
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        /// The clock for the decisions (RFC 3339) [default: now]
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
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        /// The end of the period (RFC 3339) [default: now]
        #[arg(long, value_parser = parse_rfc3339)]
        now: Option<DateTime<Utc>>,
    },
    /// Remove stored files of tickets closed longer than the retention
    Cleanup {
        /// Say what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
        /// The clock the retention is counted against (RFC 3339) [default: now]
        #[arg(long, value_parser = parse_rfc3339)]
        now: Option<DateTime<Utc>>,
    },
    /// What waits to be sent or failed (mail and webhook deliveries, with
    /// next attempt and last error), and each webhook endpoint's state
    /// (healthy, failing, paused) with its backlog
    Outbox {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<OutboxCommand>,
    },
    /// Apply the database migrations
    Migrate,
    /// Copy the database (SQLite: a consistent copy while the daemon runs;
    /// PostgreSQL: prints the pg_dump command) and the attachment store
    /// into a new directory
    Backup {
        /// The directory to create (or an empty one)
        path: PathBuf,
    },
    /// Write the man pages (DIR/man) and the bash, zsh and fish
    /// completions (DIR/completions)
    Manual {
        /// The directory to write into
        dir: PathBuf,
    },
    /// Put a backup back: the SQLite database (stop the daemon first) or
    /// the pg_restore command to run, and the attachment store
    Restore {
        /// A directory `guichet backup` made
        path: PathBuf,
        /// Replace an existing SQLite database
        #[arg(long)]
        force: bool,
    },
    /// Developers: mutate real mails and run each through the inbound
    /// path as a dry run, looking for panics and hangs (scripts/soak.sh)
    #[command(hide = true)]
    Fuzz {
        /// How many mutated inputs
        #[arg(long, default_value_t = 1_000_000)]
        inputs: u64,
        /// The generator's seed: the same seed gives the same inputs
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write inputs that panic or hang, as fixtures
        #[arg(long, default_value = "fuzz-crashes")]
        crashes: PathBuf,
        /// Files or folders of seed mails
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Check everything the settings point at (DNS, TLS, logins, folder,
    /// IDLE, SMTP sender, clamd, database, webhooks, templates,
    /// permissions), each failure with its fix; exit 0 only if all pass
    Doctor {
        /// Print the checks as JSON (for scripts)
        #[arg(long)]
        json: bool,
        /// Also POST the demo event to each webhook endpoint
        #[arg(long)]
        send: bool,
    },
    /// OAuth2 sign-in for `auth = "oauth2"` logins
    Oauth {
        #[command(subcommand)]
        command: OauthCommand,
    },
    /// One person's data: export it, or erase it (GDPR articles 15, 17, 20)
    Customers {
        #[command(subcommand)]
        command: CustomersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum OauthCommand {
    /// Sign in with the device flow (RFC 8628): prints an address and a
    /// code to enter in a browser, waits, and stores the refresh token in
    /// the database
    Login {
        /// Whose login: `imap` (the [imap] table, default), a
        /// `[[mailboxes]]` name, or `smtp`
        #[arg(long, default_value = "imap")]
        mailbox: String,
        /// The account to store the token for [default: the mailbox's username]
        #[arg(long)]
        account: Option<String>,
    },
    /// Store a refresh token obtained elsewhere (read from stdin, never
    /// from the command line): for providers whose device flow refuses
    /// the mail scope (Google). It is checked with one refresh first.
    Store {
        /// Whose login: `imap` (the [imap] table, default), a
        /// `[[mailboxes]]` name, or `smtp`
        #[arg(long, default_value = "imap")]
        mailbox: String,
        /// The account to store the token for [default: the mailbox's username]
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Write everything about ADDRESS to the folder PATH: export.json, the
    /// original mails they sent, their files
    Export {
        /// The person's address
        address: String,
        /// The folder to write (created; must not exist or be empty)
        #[arg(long)]
        output: PathBuf,
    },
    /// Tie OTHER to the customer ADDRESS: one person writing from several
    /// addresses. Their replies from either address join their tickets as
    /// theirs, and `stats` counts them once
    Merge {
        /// An address of the customer
        address: String,
        /// Their other address
        other: String,
    },
    /// Take ADDRESS out of the customer it was merged into: it stands for
    /// itself again
    Split {
        /// The address to take out
        address: String,
    },
    /// List every address of the customer writing from ADDRESS
    Addresses {
        /// One of the customer's addresses
        address: String,
    },
    /// Erase ADDRESS: their tickets whole, their messages in other tickets
    /// replaced by a placeholder, their address off every ticket. Without
    /// --yes, only shows what would go
    Erase {
        /// The person's address
        address: String,
        /// Only show what would go (the default without --yes)
        #[arg(long)]
        dry_run: bool,
        /// Erase for real
        #[arg(long, conflicts_with = "dry_run")]
        yes: bool,
        /// The clock of the erasure (RFC 3339), for tests
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
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// One ticket with its messages, attachments' verdicts and events
    Show {
        /// The ticket's number
        id: i64,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Messages stored raw that could not be placed in a ticket
    Problems {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Make an item due at once (a failed one is queued again), or all
    /// waiting items and those failed in the last 7 days
    Retry {
        /// The item, as `outbox` lists it: m12 (mail) or w34 (webhook delivery)
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<outbox::ItemId>,
        /// Every waiting item, and every item failed in the last 7 days
        #[arg(long)]
        all: bool,
    },
    /// Give up a waiting item: never sent, kept as failed with why
    Drop {
        /// The item, as `outbox` lists it: m12 (mail) or w34 (webhook delivery)
        id: outbox::ItemId,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// POST a demonstration event to every endpoint (or --url) and show the answer
    Test {
        /// Only this URL (need not be in the settings) [default: every endpoint]
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
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "`{s}` is neither a date (2026-11-25) nor an RFC 3339 time (2026-11-25T10:00:00Z)"
            )
        })
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
    // colour only for a person at a terminal: never into journald, a
    // pipe or a file (and never when NO_COLOR is set)
    let ansi = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
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

/// `guichet fuzz`: settings of its own (a scratch SQLite store, one
/// department, PDF and PNG allowed), so that it needs no settings file.
async fn fuzz(
    inputs: u64,
    seed: u64,
    crashes: &Path,
    paths: &[PathBuf],
) -> Result<crate::workers::fuzz::FuzzReport, Failure> {
    let dir = std::env::temp_dir().join(format!("guichet-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("temp dir")?;
    let config = dir.join("fuzz.toml");
    std::fs::write(
        &config,
        "[helpdesk]\nsecret = \"fuzz-secret-0123456789abcdef\"\n\
         [attachments]\nstorage_dir = \"files\"\nallowed_extensions = [\"pdf\", \"png\", \"txt\"]\n\
         [imap]\nhost = \"127.0.0.1\"\nusername = \"support@example.test\"\npassword = \"x\"\n\
         [smtp]\nhost = \"127.0.0.1\"\nfrom = \"Support <support@example.test>\"\n\
         [database]\nurl = \"sqlite://fuzz.db\"\n\
         [[departments]]\nname = \"Support\"\naddress = \"support@example.test\"\n\
         agents = [\"agent@example.test\"]\n",
    )
    .context("write the fuzz settings")?;
    let s = load_settings(&config)?;
    let seeds = crate::workers::fuzz::read_seeds(paths);
    let report = crate::workers::fuzz::run(&s, seeds, inputs, seed, crashes).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report?)
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
            state_dir,
        } => {
            let path = output.unwrap_or(cli.config);
            let state_dir = state_dir.or_else(|| default_state_dir(&path));
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
            let text = with_state_dir(&settings::presets::render(preset), state_dir.as_deref());
            std::fs::write(&path, text)
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
        Command::Import {
            mailbox,
            folder,
            since,
        } => {
            let s = load_settings(&cli.config)?;
            let rt = Runtime::start(s, Clock::System).await?;
            let report = daemon::import(&rt, &mailbox, folder.as_deref(), since).await?;
            println!("{}", serde_json::to_string(&report)?);
            rt.store.close().await;
            Ok(())
        }
        Command::Fuzz {
            inputs,
            seed,
            crashes,
            paths,
        } => {
            let report = fuzz(inputs, seed, &crashes, &paths).await?;
            println!("{}", serde_json::to_string(&report)?);
            if report.panics + report.hangs > 0 {
                return Err(fail(1, anyhow::anyhow!("the fuzz loop found crashes")));
            }
            Ok(())
        }
        Command::Tickets { command } => {
            let s = readonly::load_settings(&cli.config)?;
            let store = readonly::open_store(&s).await?;
            match command {
                TicketsCommand::List { status, json } => {
                    show::list(&store, status.as_deref(), json).await
                }
                TicketsCommand::Show { id, json } => show::show(&store, id, json).await,
                TicketsCommand::Problems { json } => show::problems(&store, json).await,
            }
        }
        Command::Explain { file, json, now } => {
            let s = readonly::load_settings_for_explain(&cli.config)?;
            let raw =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let store = readonly::open_store(&s).await?;
            show::explain(&s, &store, &raw, json, now.unwrap_or_else(Utc::now)).await
        }
        Command::Webhook {
            command: WebhookCommand::Test { url },
        } => {
            let s = load_settings(&cli.config)?;
            show::webhook_test(&s, url.as_deref()).await
        }
        Command::Stats { since, json, now } => {
            let s = readonly::load_settings(&cli.config)?;
            let store = readonly::open_store(&s).await?;
            show::stats(&store, &s, since, now.unwrap_or_else(Utc::now), json).await
        }
        Command::Outbox { json, command } => {
            let s = readonly::load_settings(&cli.config)?;
            let store = readonly::open_store(&s).await?;
            match command {
                None => outbox::show(&store, &s, json).await,
                Some(OutboxCommand::Retry { id, .. }) => outbox::retry(&store, id).await,
                Some(OutboxCommand::Drop { id }) => outbox::drop_item(&store, id).await,
            }
        }
        Command::Manual { dir } => manual::write(&dir),
        Command::Backup { path } => {
            let s = readonly::load_settings(&cli.config)?;
            let store = readonly::open_store(&s).await?;
            let done = backup::backup(&s, &store, &path).await;
            store.close().await;
            done
        }
        Command::Restore { path, force } => {
            let s = readonly::load_settings(&cli.config)?;
            backup::restore(&s, &path, force).await
        }
        Command::Doctor { json, send } => {
            if doctor::doctor(&cli.config, json, send).await? {
                Ok(())
            } else {
                Err(fail(1, anyhow::anyhow!("some checks failed (see above)")))
            }
        }
        Command::Oauth { command } => {
            let (mailbox, account, store_given) = match command {
                OauthCommand::Login { mailbox, account } => (mailbox, account, false),
                OauthCommand::Store { mailbox, account } => (mailbox, account, true),
            };
            let s = load_settings(&cli.config)?;
            let named = s
                .mailboxes
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(&mailbox));
            let account = match (account, named, mailbox.as_str()) {
                (Some(a), _, _) => a,
                (None, Some(m), _) => m.imap.username.clone(),
                (None, None, "smtp") => s.smtp.username.clone().ok_or_else(|| {
                    fail(2, anyhow::anyhow!("[smtp] has no username to sign in for"))
                })?,
                (None, None, other) => {
                    let names: Vec<&str> = s.mailboxes.iter().map(|m| m.name.as_str()).collect();
                    return Err(fail(
                        2,
                        anyhow::anyhow!(
                            "unknown mailbox `{other}`: one of {}, or `smtp`",
                            names.join(", ")
                        ),
                    ));
                }
            };
            let store = open_store(&s).await?;
            if store_given {
                oauth_store(&s, &store, &account).await
            } else {
                oauth_login(&s, &store, &account).await
            }
        }
        Command::Customers { command } => {
            let s = load_settings(&cli.config)?;
            let store = open_store(&s).await?;
            let done = match command {
                CustomersCommand::Merge { address, other } => {
                    customers::merge(&store, &address, &other).await
                }
                CustomersCommand::Split { address } => customers::split(&store, &address).await,
                CustomersCommand::Addresses { address } => {
                    customers::addresses(&store, &address).await
                }
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

/// `guichet oauth store`: a refresh token from stdin, checked, stored.
async fn oauth_store(s: &Settings, store: &Store, account: &str) -> Result<(), Failure> {
    use crate::adapters::oauth::{OAuthClient, OAuthError};
    use crate::rules::oauth::{ProviderError, explain};
    let Some(o) = &s.oauth2 else {
        return Err(fail(
            2,
            anyhow::anyhow!("no [oauth2] table in the settings"),
        ));
    };
    let mut given = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut given)
        .context("cannot read the refresh token from stdin")?;
    let given = given.trim();
    if given.is_empty() {
        return Err(fail(2, anyhow::anyhow!("no refresh token on stdin")));
    }
    let client = OAuthClient::new(o).map_err(anyhow::Error::msg)?;
    let tokens = client.refresh(given).await.map_err(|e| match e {
        OAuthError::Provider { error, description } => {
            anyhow::anyhow!("{}", explain(&ProviderError { error, description }))
        }
        other => anyhow::anyhow!("{other}"),
    })?;
    let keep = tokens.refresh_token.as_deref().unwrap_or(given);
    store
        .save_oauth_refresh_token(account, keep, Utc::now())
        .await?;
    println!("The refresh token works; stored for {account} in the database.");
    Ok(())
}

/// `guichet oauth login`: the device flow, then the refresh token stored.
async fn oauth_login(s: &Settings, store: &Store, account: &str) -> Result<(), Failure> {
    use crate::adapters::oauth::{OAuthClient, OAuthError, Poll};
    use crate::rules::oauth::{ProviderError, account_of_id_token, explain};
    let Some(o) = &s.oauth2 else {
        return Err(fail(
            2,
            anyhow::anyhow!(
                "no [oauth2] table in the settings: add one (see README, \"Microsoft 365 and Google\")"
            ),
        ));
    };
    let explained = |e: OAuthError| match e {
        OAuthError::Provider { error, description } => {
            let pe = ProviderError { error, description };
            anyhow::anyhow!("{}", explain(&pe))
        }
        other => anyhow::anyhow!("{other}"),
    };
    let client = OAuthClient::new(o).map_err(anyhow::Error::msg)?;
    let code = client.device_code().await.map_err(explained)?;
    println!("Signing in for {account}.");
    match &code.verification_uri_complete {
        Some(full) => println!(
            "Open {} in a browser and enter the code {} (or open {full}).",
            code.verification_uri, code.user_code
        ),
        None => println!(
            "Open {} in a browser and enter the code {}.",
            code.verification_uri, code.user_code
        ),
    }
    println!("Waiting for the sign-in…");
    let mut interval = code.interval.unwrap_or(5).clamp(1, 60);
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_secs(code.expires_in.unwrap_or(900).min(3600));
    let tokens = loop {
        if std::time::Instant::now() >= deadline {
            return Err(fail(
                1,
                anyhow::anyhow!(
                    "the code expired before the sign-in: run `guichet oauth login` again"
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
        match client
            .poll_device(&code.device_code)
            .await
            .map_err(explained)?
        {
            Poll::Done(t) => break t,
            Poll::Pending => {}
            Poll::SlowDown => interval += 5,
        }
    };
    let Some(refresh) = tokens.refresh_token.as_deref() else {
        return Err(fail(
            1,
            anyhow::anyhow!(
                "the provider gave no refresh token: add `offline_access` to `oauth2.scopes` (Microsoft) or check the app's type"
            ),
        ));
    };
    store
        .save_oauth_refresh_token(account, refresh, Utc::now())
        .await?;
    let signed_in = tokens.id_token.as_deref().and_then(account_of_id_token);
    match signed_in {
        Some(who) => println!(
            "Signed in as {who}; the refresh token for {account} is stored in the database."
        ),
        None => println!(
            "Signed in (the provider did not say as whom); the refresh token for {account} is stored in the database."
        ),
    }
    Ok(())
}

/// Where `init` puts the state (database, stored files) of a settings
/// file written under `/etc`: `/var/lib/guichet` (systemd's
/// `StateDirectory=guichet`), not beside the settings. `None`: `data`
/// beside the file, as the presets say.
fn default_state_dir(settings: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(settings).ok()?;
    absolute
        .starts_with("/etc")
        .then(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// The state directory of a service install (the .deb, the unit).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/guichet";

/// A preset's text with a `state_dir` line (before its first table) and
/// its `data/` paths relative to it.
fn with_state_dir(text: &str, state_dir: Option<&Path>) -> String {
    let Some(dir) = state_dir else {
        return text.to_string();
    };
    let dir = dir.display().to_string();
    let dir = dir.trim_end_matches('/');
    let text = text
        .replace("\"data/", "\"")
        .replace("\"sqlite://data/", "\"sqlite://");
    let line = format!(
        "# Where the database and the stored files go (their relative paths below\n\
         # are relative to it): systemd's StateDirectory=guichet.\n\
         state_dir = \"{dir}\"\n\n"
    );
    match text.find("\n[") {
        Some(i) => format!("{}{line}{}", &text[..i + 1], &text[i + 1..]),
        None => line + &text,
    }
}

/// How long the daemon waits for a first mailbox connection before it
/// tells systemd it is ready anyway (the unit's TimeoutStartSec is longer).
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

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
    let metrics = crate::workers::metrics::Metrics::new();
    let watchdog = crate::workers::watchdog::Watchdog::new();
    // systemd (Type=notify): ready once the store is open (Runtime::start)
    // and a mailbox connection is up, or after a minute without one (and
    // says so: the service runs and keeps trying)
    let (stop_helpers, helpers_stopped) = watch::channel(false);
    {
        let watchdog = watchdog.clone();
        tokio::spawn(async move {
            if watchdog.wait_connected(READY_WITHIN).await {
                crate::adapters::systemd::notify("READY=1\nSTATUS=mailbox connected");
            } else {
                crate::adapters::systemd::notify(
                    "READY=1\nSTATUS=running, but no mailbox connection yet (see the log)",
                );
            }
        });
    }
    if let Some(every) = crate::adapters::systemd::watchdog_every() {
        tokio::spawn(crate::workers::watchdog::feed(
            watchdog.clone(),
            every,
            helpers_stopped,
        ));
    }
    let mut next: Option<Runtime> = None;
    loop {
        let mut rt = match next.take() {
            Some(rt) => rt,
            None => Runtime::start(s.clone(), clock).await?,
        };
        rt.health = health.clone();
        rt.metrics = metrics.clone();
        rt.watchdog = watchdog.clone();
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
        if reload.is_some() {
            crate::adapters::systemd::status("reloading the settings");
            tracing::info!("SIGHUP: reloading the settings, after the message in hand");
        } else {
            let _ = stop_helpers.send(true);
            crate::adapters::systemd::notify("STOPPING=1\nSTATUS=stopping");
            tracing::info!("stopping: finishing the message in hand");
        }
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

#[cfg(test)]
mod state_dir_tests {
    use super::*;

    #[test]
    fn settings_under_etc_keep_their_state_in_var_lib() {
        assert_eq!(
            default_state_dir(Path::new("/etc/guichet/guichet.toml")),
            Some(PathBuf::from("/var/lib/guichet"))
        );
        assert_eq!(default_state_dir(Path::new("/srv/desk/guichet.toml")), None);
        assert_eq!(default_state_dir(Path::new("guichet.toml")), None);
        let text = "# head\n\n[attachments]\nstorage_dir = \"data/attachments\"\n[database]\nurl = \"sqlite://data/guichet.db\"\n";
        assert_eq!(
            with_state_dir(text, Some(Path::new("/var/lib/guichet/"))),
            "# head\n\n# Where the database and the stored files go (their relative paths below\n\
             # are relative to it): systemd's StateDirectory=guichet.\n\
             state_dir = \"/var/lib/guichet\"\n\n\
             [attachments]\nstorage_dir = \"attachments\"\n[database]\nurl = \"sqlite://guichet.db\"\n"
        );
        assert_eq!(with_state_dir(text, None), text);
    }
}

#[cfg(test)]
mod date_argument_tests {
    use super::parse_date;

    /// `stats --since` takes a date or a time, and its error says both
    /// (it named RFC 3339 only, though a plain date works).
    #[test]
    fn a_since_that_is_neither_says_what_is_accepted() {
        assert_eq!(
            parse_date("2026-12-05").unwrap().to_rfc3339(),
            "2026-12-05T00:00:00+00:00"
        );
        assert!(parse_date("2026-12-05T10:00:00Z").is_ok());
        let e = parse_date("yesterday").unwrap_err();
        assert!(
            e.contains("a date (2026-11-25)") && e.contains("RFC 3339"),
            "{e}"
        );
    }
}
