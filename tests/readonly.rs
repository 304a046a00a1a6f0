//! The commands that only read (`tickets`, `stats`, `explain`, `outbox`)
//! need none of the daemon's secrets and never migrate a database: one
//! with an older schema (an older daemon still running on it) is left as
//! it is, and they say what to do.

use std::path::Path;
use std::process::{Command, Output};

/// `guichet ARGS` in `dir`, with the secrets the daemon would have in its
/// environment only when `secrets` says so.
fn guichet(dir: &Path, args: &[&str], secrets: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_guichet"));
    c.current_dir(dir)
        .args(args)
        .env_remove("GUICHET_CONFIG")
        .env_remove("GUICHET_SECRET")
        .env_remove("GUICHET_IMAP_PASSWORD")
        .env_remove("GUICHET_SMTP_PASSWORD")
        .env_remove("CREDENTIALS_DIRECTORY");
    if secrets {
        c.env("GUICHET_IMAP_PASSWORD", "imap-pass")
            .env("GUICHET_SMTP_PASSWORD", "smtp-pass")
            .env(
                "GUICHET_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
            .env("CREDENTIALS_DIRECTORY", dir.join("creds"));
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A desk from the startup preset whose reply-token secret is a systemd
/// credential (not there outside the service) and whose passwords are in
/// variables of the daemon's environment only.
fn desk() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = guichet(dir.path(), &["init", "--preset", "startup"], false);
    assert!(out.status.success(), "{}", text(&out));
    let path = dir.path().join("guichet.toml");
    let settings = std::fs::read_to_string(&path)
        .unwrap()
        .replace("example.com", "mycorp.test")
        .replace("ID/TOKEN", "1234/s3cr3t")
        .replace("T000/B000/XXXX", "T1/B2/s3cr3t")
        .replace(
            "secret_file = \"guichet.secret\"",
            "secret_file = \"$CREDENTIALS_DIRECTORY/guichet.secret\"",
        );
    std::fs::write(&path, settings).unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(
        creds.join("guichet.secret"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    dir
}

/// A customer's mail for `explain` (m.eml in the desk).
const A_MAIL: &str = "From: a@customer.test\r\nTo: support@mycorp.test\r\nSubject: hi\r\nMessage-ID: <1@customer.test>\r\n\r\nhello\r\n";

const READ_ONLY: &[&[&str]] = &[
    &["tickets", "list", "--json"],
    &["tickets", "problems"],
    &["stats", "--json"],
    &["outbox", "--json"],
    &["explain", "m.eml"],
];

#[test]
fn read_only_commands_need_no_secrets() {
    let dir = desk();
    std::fs::write(dir.path().join("m.eml"), A_MAIL).unwrap();
    // the daemon's commands need them, and say which is missing
    let out = guichet(dir.path(), &["check-config"], false);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("CREDENTIALS_DIRECTORY"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("GUICHET_IMAP_PASSWORD"),
        "{}",
        text(&out)
    );
    for args in READ_ONLY {
        let out = guichet(dir.path(), args, false);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    // the credential, where systemd puts it, is read
    let out = guichet(dir.path(), &["check-config"], true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("0123456789abcdef0123456789abcdef"),
        "the secret is masked"
    );
}

/// The applied migrations of the desk's SQLite database.
fn applied(dir: &Path) -> Vec<i64> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.join("data/guichet.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let v: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        v
    })
}

#[test]
fn an_older_schema_is_not_migrated_by_read_only_commands() {
    let dir = desk();
    std::fs::write(dir.path().join("m.eml"), "Subject: x\r\n\r\nx\r\n").unwrap();
    // the database as an older Guichet left it: its last migration missing
    let out = guichet(dir.path(), &["migrate"], true);
    assert!(out.status.success(), "{}", text(&out));
    let all = applied(dir.path());
    let last = *all.last().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("data/guichet.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
            .bind(last)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let older = applied(dir.path());
    assert_eq!(older.len() + 1, all.len());
    for args in READ_ONLY {
        let out = guichet(dir.path(), args, false);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains("older than this Guichet")
                && said.contains(&format!("{last:04}"))
                && said.contains("changed nothing")
                && said.contains("guichet migrate"),
            "{args:?}: {said}"
        );
        assert_eq!(applied(dir.path()), older, "{args:?} migrated the database");
    }
    // the schema made current again (as `migrate` would), they read
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("data/guichet.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, 'back', 1, x'00', 0)",
        )
        .bind(last)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    });
    let out = guichet(dir.path(), &["tickets", "list"], false);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn every_file_secret_is_read_from_the_credentials_directory_when_there() {
    let dir = desk();
    // the sample's plain `secret_file = "guichet.secret"`, a file the
    // service's user cannot read (here: not there at all)
    let path = dir.path().join("guichet.toml");
    let settings = std::fs::read_to_string(&path).unwrap().replace(
        "secret_file = \"$CREDENTIALS_DIRECTORY/guichet.secret\"",
        "secret_file = \"guichet.secret\"",
    );
    std::fs::write(&path, settings).unwrap();
    std::fs::remove_file(dir.path().join("guichet.secret")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .current_dir(dir.path())
        .arg("check-config")
        .env_remove("GUICHET_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("GUICHET_IMAP_PASSWORD", "imap-pass")
        .env("GUICHET_SMTP_PASSWORD", "smtp-pass")
        .env(
            "GUICHET_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("guichet.secret"), "{}", text(&out));
    // under systemd, LoadCredential=guichet.secret:/etc/guichet/guichet.secret
    let out = guichet(dir.path(), &["check-config"], true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("creds/guichet.secret"),
        "check-config says which file it read: {}",
        text(&out)
    );
}

/// An admin's command run as root on a desk whose state folder belongs
/// to the service's user leaves that user able to open its database: the
/// lock file and the database root's command made are the service's.
/// (Once, `guichet.db.migrate-lock` stayed root's and private, and the
/// service failed to start with "Permission denied".)
#[test]
fn a_root_command_leaves_the_database_to_the_services_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid only reads this process's effective user id.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (CI runs as root)");
        return;
    }
    const SERVICE: u32 = 65534; // nobody, standing for the `guichet` user
    let dir = desk();
    // the service can read its settings and secret, as under systemd
    for (path, mode) in [
        (dir.path().to_path_buf(), 0o755),
        (dir.path().join("guichet.toml"), 0o644),
        (dir.path().join("creds"), 0o755),
        (dir.path().join("creds/guichet.secret"), 0o644),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // the state folder is the service's and empty: nothing started yet
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(SERVICE), Some(SERVICE)).unwrap();

    let out = guichet(dir.path(), &["tickets", "list", "--json"], false);
    assert!(out.status.success(), "as root: {}", text(&out));
    for name in ["guichet.db", "guichet.db.migrate-lock"] {
        let meta = std::fs::metadata(data.join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (SERVICE, SERVICE), "{name}");
    }
    // a backup put back by root, and doctor's look at the attachment
    // folder (made by it): the service's too
    let backup = tempfile::tempdir().unwrap();
    let saved = backup.path().join("saved");
    let out = guichet(dir.path(), &["backup", saved.to_str().unwrap()], false);
    assert!(out.status.success(), "backup: {}", text(&out));
    let out = guichet(
        dir.path(),
        &["restore", "--force", saved.to_str().unwrap()],
        true,
    );
    assert!(out.status.success(), "restore: {}", text(&out));
    // (doctor's other checks fail here, with no servers: only the folder
    // it makes is looked at)
    let _ = guichet(dir.path(), &["doctor"], true);
    for name in ["guichet.db", "attachments"] {
        let meta = std::fs::metadata(data.join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (SERVICE, SERVICE), "{name}");
    }
    let as_service = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_guichet"))
        .args(["tickets", "list", "--json"])
        .current_dir(dir.path())
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    assert!(
        as_service.status.success(),
        "as the service's user: {}",
        text(&as_service)
    );
}

/// `explain` says reply tokens are not verified only when the token key
/// itself cannot be read: with the key there and only the daemon's
/// passwords missing, it verified them while saying it did not.
#[test]
fn explain_warns_of_unverified_tokens_only_without_the_token_key() {
    let dir = desk();
    std::fs::write(dir.path().join("m.eml"), A_MAIL).unwrap();
    let explain = |with_key: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_guichet"));
        c.current_dir(dir.path())
            .args(["explain", "m.eml"])
            .env_remove("GUICHET_CONFIG")
            .env_remove("GUICHET_IMAP_PASSWORD")
            .env_remove("GUICHET_SMTP_PASSWORD")
            .env_remove("GUICHET_WEBHOOK_SECRET")
            .env_remove("CREDENTIALS_DIRECTORY");
        if with_key {
            c.env("CREDENTIALS_DIRECTORY", dir.path().join("creds"));
        }
        c.output().unwrap()
    };
    let out = explain(true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("not verified"), "{}", text(&out));
    let out = explain(false);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("reply tokens are not verified"),
        "{}",
        text(&out)
    );
}
