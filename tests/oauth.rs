//! OAuth2 logins against the real servers (issue 14). The rig's Dovecot
//! checks XOAUTH2/OAUTHBEARER bearer tokens (IMAP, and Postfix's SMTP AUTH
//! through Dovecot's SASL): JWTs signed with the rig's key
//! (`OAUTH_JWT_KEY`). The token service here (RFC 8628 device
//! authorization, RFC 6749 token endpoint with the device and refresh
//! grants) hands out such JWTs, so the servers accept exactly the tokens
//! it issued and refuse expired ones.

mod harness;
mod receiver;
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use harness::Desk;
use support::{
    deliver_lmtp, fetch_all, fresh_user, kick_imap_user, simple_message, wait_for_messages,
};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    /// JWT lifetime (what the servers enforce).
    access_ttl: i64,
    /// `expires_in` told to the client.
    advertised: i64,
    /// refresh token → (account, revoked)
    refresh: HashMap<String, (String, bool)>,
    /// device code → polls so far
    polls: HashMap<String, u32>,
    /// who signs in at the "browser"
    account: String,
    refresh_grants: u32,
    next: u32,
}

#[derive(Clone)]
struct TokenService {
    base: String,
    key: Vec<u8>,
    state: Arc<Mutex<State>>,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenService {
    fn start(account: &str) -> TokenService {
        let key = std::env::var("OAUTH_JWT_KEY")
            .expect("OAUTH_JWT_KEY: run through scripts/test.sh (rig version 3)");
        let key = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let svc = TokenService {
            base: format!("http://{}", listener.local_addr().unwrap()),
            key,
            state: Arc::new(Mutex::new(State {
                access_ttl: 3600,
                advertised: 3600,
                account: account.to_string(),
                ..State::default()
            })),
        };
        let s = svc.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || s.serve(stream));
            }
        });
        svc
    }

    fn jwt(&self, account: &str, ttl: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims =
            serde_json::json!({"sub": account, "email": account, "iat": now - 5, "exp": now + ttl});
        let payload = b64url(claims.to_string().as_bytes());
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).unwrap();
        mac.update(format!("{header}.{payload}").as_bytes());
        let sig = b64url(&mac.finalize().into_bytes());
        format!("{header}.{payload}.{sig}")
    }

    fn tokens(&self, st: &mut State, account: &str, refresh: &str) -> (u16, String) {
        let body = serde_json::json!({
            "access_token": self.jwt(account, st.access_ttl),
            "token_type": "Bearer",
            "expires_in": st.advertised,
            "refresh_token": refresh,
            "id_token": format!("{}.{}.x", b64url(b"{}"), b64url(serde_json::json!({"email": account}).to_string().as_bytes())),
        });
        (200, body.to_string())
    }

    fn answer(&self, path: &str, form: &HashMap<String, String>) -> (u16, String) {
        let mut st = self.state.lock().unwrap();
        let error = |e: &str, d: &str| {
            (
                400,
                serde_json::json!({"error": e, "error_description": d}).to_string(),
            )
        };
        match (path, form.get("grant_type").map(String::as_str)) {
            ("/device", _) => {
                st.next += 1;
                let code = format!("dc-{}", st.next);
                st.polls.insert(code.clone(), 0);
                (
                    200,
                    serde_json::json!({
                    "device_code": code, "user_code": "WDJB-MJHT",
                    "verification_uri": format!("{}/verify", self.base),
                    "expires_in": 300, "interval": 1})
                    .to_string(),
                )
            }
            ("/token", Some("urn:ietf:params:oauth:grant-type:device_code")) => {
                let code = form.get("device_code").cloned().unwrap_or_default();
                let Some(polls) = st.polls.get_mut(&code) else {
                    return error("invalid_grant", "unknown device code");
                };
                *polls += 1;
                if *polls < 2 {
                    return error("authorization_pending", "the user has not signed in yet");
                }
                st.polls.remove(&code);
                st.next += 1;
                let refresh = format!("rt-{}-{}", st.next, rand::random::<u64>());
                let account = st.account.clone();
                st.refresh.insert(refresh.clone(), (account.clone(), false));
                self.tokens(&mut st, &account, &refresh)
            }
            ("/token", Some("refresh_token")) => {
                st.refresh_grants += 1;
                let rt = form.get("refresh_token").cloned().unwrap_or_default();
                match st.refresh.get(&rt).cloned() {
                    Some((account, false)) => self.tokens(&mut st, &account, &rt),
                    _ => error(
                        "invalid_grant",
                        "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.",
                    ),
                }
            }
            _ => error("unsupported_grant_type", "?"),
        }
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut length = 0;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let (status, text) = self.answer(&path, &form);
        let mut out = stream;
        let _ = write!(
            out,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
    }

    fn revoke_all(&self) {
        for v in self.state.lock().unwrap().refresh.values_mut() {
            v.1 = true;
        }
    }

    fn refresh_grants(&self) -> u32 {
        self.state.lock().unwrap().refresh_grants
    }
}

/// A desk whose IMAP and SMTP logins use OAuth2 with `svc`.
fn oauth_desk(svc: &TokenService, extra: &str) -> Desk {
    let desk = Desk::with(
        "",
        "",
        &format!(
            "[oauth2]\nprovider = \"custom\"\nclient_id = \"guichet-test\"\nclient_secret = \"s3cr3t-client\"\ntoken_url = \"{0}/token\"\ndevice_authorization_url = \"{0}/device\"\nscopes = [\"mail\", \"offline_access\"]\n\n{extra}",
            svc.base
        ),
    );
    let password = &support::rig().password;
    desk.edit_settings(
        &format!("password = \"{password}\"\npoll_seconds"),
        "auth = \"oauth2\"\npoll_seconds",
    );
    desk.edit_settings(
        "tls = \"none\"\nfrom =",
        &format!(
            "tls = \"none\"\nusername = \"{}\"\nauth = \"oauth2\"\nfrom =",
            desk.support
        ),
    );
    desk
}

fn login(desk: &Desk) -> String {
    let out = desk.run(&["oauth", "login"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "oauth login failed: {text}");
    text
}

fn postfix_log() -> String {
    std::fs::read_to_string(support::rig().dir.join("log/postfix.log")).unwrap_or_default()
}

fn spawn(desk: &Desk) -> Child {
    desk.command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) -> String {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

async fn wait_for_tickets(desk: &Desk, n: usize) -> usize {
    let start = Instant::now();
    loop {
        let t = desk.tickets().len();
        if t >= n || start.elapsed() > WAIT {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn device_login_stores_a_refresh_token_and_the_daemon_reads_and_sends_with_tokens() {
    let support = fresh_user("support");
    let svc = TokenService::start(&support);
    let desk = oauth_desk(&svc, "");
    svc.state.lock().unwrap().account = desk.support.clone();

    // before the login: no token, a clear error, nothing lost
    let customer = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "Via OAuth", "hello"),
    )
    .await;
    let out = desk.run(&["run", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("guichet oauth login"),
        "{err}"
    );

    let said = login(&desk);
    assert!(
        said.contains("WDJB-MJHT") && said.contains(&format!("{}/verify", svc.base)),
        "{said}"
    );
    assert!(
        said.contains(&format!("Signed in as {}", desk.support)),
        "{said}"
    );
    assert!(
        !said.contains("rt-"),
        "the refresh token is never printed: {said}"
    );

    let out = desk.run_once(None);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        !logs.contains("rt-") && !logs.contains("eyJ"),
        "no token in the logs: {logs}"
    );
    assert_eq!(
        desk.tickets().len(),
        1,
        "IMAP read the mail with an OAuth2 token"
    );
    let ack = wait_for_messages(&customer, 1, WAIT).await;
    assert_eq!(ack.len(), 1, "the acknowledgement went out");
    let log = postfix_log();
    assert!(
        log.lines().any(|l| l.contains("sasl_method=XOAUTH2")
            && l.contains(&format!("sasl_username={}", desk.support))),
        "Postfix saw an XOAUTH2 login as the support address"
    );
    assert!(svc.refresh_grants() >= 1);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_without_losing_mail() {
    let support = fresh_user("support");
    let svc = TokenService::start(&support);
    let desk = oauth_desk(&svc, "");
    svc.state.lock().unwrap().account = desk.support.clone();
    login(&desk);
    // the servers see tokens die after 3 s while the client is told an hour
    svc.state.lock().unwrap().access_ttl = 3;
    let child = spawn(&desk);
    let customer = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "One", "first"),
    )
    .await;
    assert_eq!(wait_for_tickets(&desk, 1).await, 1);
    wait_for_messages(&customer, 1, WAIT).await;
    let grants = svc.refresh_grants();

    tokio::time::sleep(Duration::from_secs(4)).await;
    // the IDLE connection is cut: the reconnect meets the expired token
    kick_imap_user(&desk.support);
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "Two", "second"),
    )
    .await;
    let tickets = wait_for_tickets(&desk, 2).await;
    let acks = wait_for_messages(&customer, 2, WAIT).await;
    let logs = stop(child);
    assert_eq!(tickets, 2, "the second mail became a ticket: {logs}");
    assert_eq!(acks.len(), 2, "and was acknowledged: {logs}");
    assert!(
        svc.refresh_grants() > grants,
        "a refused token was refreshed"
    );
    assert!(
        logs.contains("refreshing it and trying once more"),
        "{logs}"
    );
    assert!(!logs.contains("cannot log in with OAuth2"), "{logs}");
}

#[tokio::test]
async fn a_revoked_refresh_token_gives_the_error_the_event_and_no_lost_mail() {
    let hooks = receiver::Receiver::start();
    let support = fresh_user("support");
    let svc = TokenService::start(&support);
    let desk = oauth_desk(
        &svc,
        &format!(
            "[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\nsystem_events = true\n",
            hooks.url("/hook")
        ),
    );
    svc.state.lock().unwrap().account = desk.support.clone();
    login(&desk);
    svc.revoke_all();
    let customer = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "Waits", "keep me"),
    )
    .await;

    let child = spawn(&desk);
    let got = hooks
        .wait_until(WAIT, "mailbox.auth_failed", |all| {
            all.iter()
                .any(|r| r.json()["event"] == "mailbox.auth_failed")
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let logs = stop(child);
    let events: Vec<_> = hooks
        .all()
        .into_iter()
        .filter(|r| r.json()["event"] == "mailbox.auth_failed")
        .collect();
    assert_eq!(
        events.len(),
        1,
        "one event per episode, not per retry: {got:?}"
    );
    let data = &events[0].json()["data"];
    assert_eq!(data["account"], desk.support.as_str());
    assert!(
        data["fix"]
            .as_str()
            .unwrap()
            .contains("guichet oauth login"),
        "{data}"
    );
    assert!(
        logs.contains("ERROR")
            && logs.contains("guichet oauth login")
            && logs.contains("AADSTS70008"),
        "{logs}"
    );
    assert!(
        logs.matches("cannot log in with OAuth2").count() >= 2,
        "the daemon kept retrying: {logs}"
    );
    assert_eq!(desk.tickets().len(), 0);
    assert_eq!(
        fetch_all(&desk.support).await.len(),
        1,
        "the mail waits on the server"
    );

    // a new sign-in: the mail comes in
    login(&desk);
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 1, "no mail lost");
}

#[tokio::test]
async fn a_refresh_token_from_elsewhere_is_checked_then_stored() {
    let support = fresh_user("support");
    let svc = TokenService::start(&support);
    let desk = oauth_desk(&svc, "");
    let given = "rt-given-elsewhere";
    let store = |token: &str| {
        let mut child = desk
            .command(&["oauth", "store"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(token.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // unknown to the provider: refused, with the explanation
    let (ok, said) = store(given);
    assert!(!ok && said.contains("AADSTS70008"), "{said}");
    svc.state
        .lock()
        .unwrap()
        .refresh
        .insert(given.into(), (desk.support.clone(), false));
    let (ok, said) = store(given);
    assert!(ok, "{said}");
    assert!(!said.contains(given), "never echoed: {said}");
    let customer = fresh_user("customer");
    deliver_lmtp(
        &desk.support,
        &simple_message(&customer, &desk.support, "Stored", "x"),
    )
    .await;
    desk.run_once(None);
    assert_eq!(desk.tickets().len(), 1);
}
