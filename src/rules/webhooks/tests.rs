//! Golden shapes for every format × event, escaping of hostile text, the
//! targets' length limits, and format detection.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::*;

const TEMPLATE: &str = "https://desk.example.com/tickets/{id}";

fn sample_event(kind: EventKind) -> Event {
    let data = match kind {
        EventKind::TicketCreated => json!({
            "from": "client@example.com",
            "text_excerpt": "Bonjour,\nje n'arrive plus à me connecter depuis ce matin.\nMerci !",
            "linked_ticket_id": 98,
        }),
        EventKind::TicketReplied => json!({
            "from": "client@example.com",
            "text_excerpt": "J'ai essayé de vider le cache : toujours rien.",
        }),
        EventKind::TicketClosed => json!({"reason": "inactivity"}),
        EventKind::TicketReopened => json!({
            "from": "client@example.com",
            "text_excerpt": "Le problème est revenu.",
        }),
        EventKind::TicketEscalated => json!({
            "from_department": "Technique",
            "to_department": "Facturation",
        }),
        EventKind::AttachmentUploaded => json!({
            "filename": "capture.png",
            "size": 48213,
            "sniffed_type": "image/png",
        }),
        EventKind::AttachmentRejected => json!({
            "filename": "facture.pdf.exe",
            "size": 73802,
            "sniffed_type": "application/x-msdownload",
            "reason": "executable content",
        }),
        EventKind::MailFailed => json!({
            "to": "client@example.com",
            "kind": "agent_reply",
            "source": "relay",
            "reason": "550 5.1.1 <client@example.com>: Recipient address rejected",
        }),
        EventKind::SystemDegraded
        | EventKind::SystemRecovered
        | EventKind::MailboxAuthFailed
        | EventKind::CustomerErased => {
            unreachable!("system events have no ticket: sample_system_event")
        }
    };
    let status = if kind == EventKind::TicketClosed {
        TicketStatus::Closed
    } else {
        TicketStatus::Open
    };
    // The snapshot is the ticket after the event.
    let department = if kind == EventKind::TicketEscalated {
        "Facturation"
    } else {
        "Technique"
    };
    Event {
        id: "evt_01JNEW0000TESTEVENT000000".into(),
        kind,
        occurred_at: Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap(),
        ticket: TicketSnapshot {
            ticket_id: 123,
            subject: "Problème de connexion".into(),
            department: department.into(),
            priority: Priority::High,
            client: "client@example.com".into(),
            status,
        },
        data,
    }
}

const FORMATS: &[(WebhookFormat, &str)] = &[
    (WebhookFormat::Json, "json"),
    (WebhookFormat::Discord, "discord"),
    (WebhookFormat::Slack, "slack"),
    (WebhookFormat::Teams, "teams"),
];

/// Keys in sorted order whatever serde_json's `preserve_order` (which
/// another crate could switch on), so the golden text is stable.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[test]
fn every_format_and_event_matches_its_golden_file() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks");
    let mut failed = Vec::new();
    let mut compared = 0;
    for (format, name) in FORMATS {
        for kind in EventKind::ALL.iter().filter(|k| !k.is_system()) {
            let path = dir.join(name).join(format!("{}.json", kind.as_str()));
            let body = render(*format, &sample_event(*kind), Some(TEMPLATE));
            let got = serde_json::to_string_pretty(&sorted(&body)).unwrap() + "\n";
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            let failed_path = path.with_extension("json.failed");
            if got == expected {
                let _ = std::fs::remove_file(&failed_path);
            } else {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&failed_path, &got).unwrap();
                failed.push(failed_path.display().to_string());
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 32);
    assert!(
        failed.is_empty(),
        "{} of 32 shapes differ from their golden file; got written to:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn generic_json_carries_the_seed_fields_at_the_top_level() {
    for kind in EventKind::ALL.iter().filter(|k| !k.is_system()) {
        let event = sample_event(*kind);
        let body = render(WebhookFormat::Json, &event, None);
        let expected = json!({
            "id": "evt_01JNEW0000TESTEVENT000000",
            "event": kind.as_str(),
            "occurred_at": "2026-03-01T09:30:00Z",
            "ticket_id": 123,
            "subject": "Problème de connexion",
            "department": event.ticket.department,
            "priority": "high",
            "client": "client@example.com",
            "status": event.ticket.status.as_str(),
            "data": event.data,
        });
        assert_eq!(body, expected, "{kind}");
        // `Auto` (unresolved) falls back to the same body.
        assert_eq!(
            render(WebhookFormat::Auto, &event, None),
            expected,
            "{kind}"
        );
        let with_url = render(WebhookFormat::Json, &event, Some(TEMPLATE));
        assert_eq!(
            with_url["url"], "https://desk.example.com/tickets/123",
            "{kind}"
        );
    }
}

#[test]
fn links_appear_only_with_a_valid_template() {
    let event = sample_event(EventKind::TicketCreated);
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (None, None),
        (Some(TEMPLATE), Some("https://desk.example.com/tickets/123")),
        (
            Some(" https://d.example/t?id={id}&x=1 "),
            Some("https://d.example/t?id=123&x=1"),
        ),
        (
            Some("http://localhost:8080/{id}"),
            Some("http://localhost:8080/123"),
        ),
        (Some("not a url {id}"), None),
        (Some("javascript:alert({id})"), None),
        (Some("ftp://files.example/{id}"), None),
    ];
    for (template, expected) in cases {
        assert_eq!(
            ticket_link(*template, 123).as_deref(),
            *expected,
            "{template:?}"
        );
        let discord = render(WebhookFormat::Discord, &event, *template);
        assert_eq!(
            discord["embeds"][0]["url"].as_str(),
            *expected,
            "discord {template:?}"
        );
        let teams = render(WebhookFormat::Teams, &event, *template);
        let action = &teams["attachments"][0]["content"]["actions"][0];
        assert_eq!(action["url"].as_str(), *expected, "teams {template:?}");
        let slack = render(WebhookFormat::Slack, &event, *template).to_string();
        assert_eq!(
            slack.contains("Open ticket #123"),
            expected.is_some(),
            "slack {template:?}"
        );
    }
    // `&` in a Slack link target follows Slack's escaping rule.
    let slack = render(
        WebhookFormat::Slack,
        &event,
        Some("https://d.example/t?id={id}&x=1"),
    );
    let context =
        slack["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["text"].clone();
    assert_eq!(
        context,
        "<https://d.example/t?id=123&amp;x=1|Open ticket #123> · ticket.created · evt_01JNEW0000TESTEVENT000000"
    );
}

#[test]
fn formats_are_detected_from_the_host() {
    use WebhookFormat::*;
    let cases: &[(WebhookFormat, &str, WebhookFormat)] = &[
        (Auto, "https://discord.com/api/webhooks/123/abc", Discord),
        (Auto, "https://discordapp.com/api/webhooks/123/abc", Discord),
        (
            Auto,
            "https://ptb.discord.com/api/webhooks/123/abc",
            Discord,
        ),
        (
            Auto,
            "https://canary.discord.com/api/v10/webhooks/123/abc",
            Discord,
        ),
        (Auto, "https://DISCORD.COM/api/webhooks/1/x", Discord),
        (Auto, "https://discord.com/channels/1/2", Json),
        (
            Auto,
            "https://discord.com.evil.example/api/webhooks/1/x",
            Json,
        ),
        (Auto, "https://notdiscord.com/api/webhooks/1/x", Json),
        (Auto, "https://hooks.slack.com/services/T0/B0/XXX", Slack),
        (
            Auto,
            "https://hooks.slack.com.evil.example/services/T0",
            Json,
        ),
        (Auto, "https://slack.com/api/chat.postMessage", Json),
        (
            Auto,
            "https://contoso.webhook.office.com/webhookb2/abc",
            Teams,
        ),
        (
            Auto,
            "https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke",
            Teams,
        ),
        (
            Auto,
            "https://default1234.56.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/x",
            Teams,
        ),
        (Auto, "https://evil-logic.azure.com/x", Json),
        (Auto, "https://example.com/hook", Json),
        (Auto, "http://127.0.0.1:9000/hook", Json),
        (Auto, "not a url", Json),
        (Auto, "", Json),
        // A configured format wins over the host.
        (Json, "https://discord.com/api/webhooks/123/abc", Json),
        (Slack, "https://example.com/slack-compatible", Slack),
        (Teams, "https://example.com/x", Teams),
        (Discord, "https://example.com/x", Discord),
    ];
    for (configured, url, expected) in cases {
        assert_eq!(
            resolve_format(*configured, url),
            *expected,
            "{configured:?} {url}"
        );
    }
}

#[test]
fn only_https_or_loopback_http_is_accepted() {
    let cases: &[(&str, bool)] = &[
        ("https://discord.com/api/webhooks/1/x", true),
        ("https://10.0.0.5/hook", true),
        ("http://127.0.0.1:8080/hook", true),
        ("http://127.1.2.3/hook", true),
        ("http://localhost:3000/hook", true),
        ("http://LOCALHOST/hook", true),
        ("http://[::1]:9000/hook", true),
        ("http://example.com/hook", false),
        ("http://10.0.0.5/hook", false),
        ("http://localhost.evil.example/hook", false),
        ("http://127.0.0.1.nip.io/hook", false),
        ("http://[::2]/hook", false),
        ("ftp://example.com/x", false),
        ("file:///etc/passwd", false),
        ("discord.com/api/webhooks/1/x", false),
        ("", false),
    ];
    for (url, ok) in cases {
        assert_eq!(check_url(url).is_ok(), *ok, "{url}: {:?}", check_url(url));
    }
    let err = check_url("http://example.com/api/webhooks/1/SECRET-TOKEN").unwrap_err();
    assert!(!err.contains("SECRET-TOKEN"), "{err}");
}

#[test]
fn urls_are_shown_without_their_tokens() {
    let cases: &[(&str, &str)] = &[
        (
            "https://discord.com/api/webhooks/1/TOKEN",
            "https://discord.com/…",
        ),
        (
            "https://hooks.slack.com/services/T/B/TOKEN",
            "https://hooks.slack.com/…",
        ),
        ("https://user:pw@example.com/", "https://example.com/…"),
        ("https://example.com/?token=x", "https://example.com/…"),
        ("https://example.com", "https://example.com/"),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/…"),
        ("garbage TOKEN", "(invalid URL)"),
    ];
    for (url, shown) in cases {
        assert_eq!(display_url(url), *shown, "{url}");
    }
}

#[test]
fn event_ids_are_ulids_that_sort_by_time() {
    // The time part of the ULID specification's example (1469918176385 ms).
    let t = Utc.timestamp_millis_opt(1_469_918_176_385).unwrap();
    assert_eq!(make_event_id(t, 0), "evt_01ARYZ6S410000000000000000");
    assert_eq!(
        make_event_id(t, u128::MAX),
        "evt_01ARYZ6S41ZZZZZZZZZZZZZZZZ"
    );
    let id = make_event_id(t, 0x1234_5678_9abc_def0_1234);
    assert_eq!(id.len(), 30);
    assert!(
        id[4..]
            .chars()
            .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)),
        "{id}"
    );
    let later = make_event_id(t + chrono::Duration::milliseconds(1), 0);
    assert!(later > make_event_id(t, u128::MAX), "{later}");
}

#[test]
fn the_demo_event_is_the_seeds_example_ticket() {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap();
    let event = demo_event(now);
    let body = render(WebhookFormat::Json, &event, None);
    assert_eq!(body["ticket_id"], 123);
    assert_eq!(body["subject"], "Problème de connexion");
    assert_eq!(body["department"], "Technique");
    assert_eq!(body["priority"], "high");
    assert_eq!(body["status"], "open");
    assert_eq!(body["event"], "ticket.created");
    assert_eq!(body["data"]["test"], true);
    assert_eq!(body["occurred_at"], "2026-03-01T09:30:00Z");
    assert!(
        event.id.starts_with("evt_") && event.id.len() == 30,
        "{}",
        event.id
    );
    // Same input, same id: `webhook test` is reproducible with `--now`.
    assert_eq!(demo_event(now).id, event.id);
}

#[test]
fn events_round_trip_through_json_for_the_outbox() {
    for kind in EventKind::ALL.iter().filter(|k| !k.is_system()) {
        let event = sample_event(*kind);
        let stored = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&stored).unwrap(), event);
    }
}

// ---------------------------------------------------------------------------
// Escaping.

#[test]
fn escaping_per_target() {
    // (target, multiline, raw, escaped)
    let cases: &[(Target, bool, &str, &str)] = &[
        (Target::Discord, false, "plain text", "plain text"),
        (
            Target::Discord,
            false,
            "**bold** _it_ ~s~ `c`",
            r"\*\*bold\*\* \_it\_ \~s\~ \`c\`",
        ),
        (
            Target::Discord,
            false,
            "[x](http://evil)",
            r"\[x\]\(http://evil\)",
        ),
        (
            Target::Discord,
            false,
            "||spoiler|| > quote # h",
            r"\|\|spoiler\|\| \> quote \# h",
        ),
        (Target::Discord, false, r"back\slash", r"back\\slash"),
        (
            Target::Discord,
            false,
            "<@123> <#456> <t:1:R>",
            r"\<@123\> \<\#456\> \<t:1:R\>",
        ),
        (
            Target::Discord,
            false,
            "@everyone @HERE @Channel",
            "@\u{200B}everyone @\u{200B}HERE @\u{200B}Channel",
        ),
        (
            Target::Discord,
            false,
            "a@everyone.example",
            "a@\u{200B}everyone.example",
        ),
        (
            Target::Discord,
            false,
            "mail@example.com",
            "mail@example.com",
        ),
        (Target::Discord, false, "- item", r"\- item"),
        (Target::Discord, false, "a - b + c", "a - b + c"),
        (Target::Discord, false, "12. item", r"12\. item"),
        (Target::Discord, false, "v1.2 and 3.4", "v1.2 and 3.4"),
        (
            Target::Discord,
            true,
            "one\n- two\n  3. three\n+ four",
            "one\n\\- two\n  3\\. three\n\\+ four",
        ),
        (Target::Discord, false, "one\ntwo\tthree", "one two three"),
        (Target::Discord, true, "a\r\n\n\n\n\nb", "a\n\nb"),
        (
            Target::Discord,
            false,
            "bi\u{202E}di\u{0007}x\u{2066}",
            "bidix",
        ),
        (Target::Discord, false, "  trimmed  ", "trimmed"),
        (
            Target::Slack,
            false,
            "a & b <!channel> <http://e|x> > c",
            "a &amp; b &lt;!channel&gt; &lt;http://e|x&gt; &gt; c",
        ),
        (
            Target::Slack,
            false,
            "*bold* @channel @here",
            "*bold* @\u{200B}channel @\u{200B}here",
        ),
        (Target::Slack, true, "l1\nl2", "l1\nl2"),
        (
            Target::Teams,
            false,
            "**b** [x](y) <at>z</at>",
            r"\*\*b\*\* \[x\]\(y\) \<at\>z\</at\>",
        ),
        (Target::Teams, true, "l1\nl2", "l1\n\nl2"),
        (
            Target::Teams,
            false,
            "{{DATE(2026-01-01T00:00:00Z, SHORT)}}",
            "{\u{200B}{DATE\\(2026-01-01T00:00:00Z, SHORT\\)}}",
        ),
        (Target::Teams, false, "1. first", r"1\. first"),
    ];
    for (target, multiline, raw, expected) in cases {
        let got = escaped(raw, *target, *multiline).fit(usize::MAX);
        assert_eq!(&got, expected, "raw {raw:?} (multiline {multiline})");
    }
}

#[test]
fn cutting_keeps_escapes_whole_and_ends_with_an_ellipsis() {
    // (raw, max, expected) for Discord.
    let cases: &[(&str, usize, &str)] = &[
        ("abcdef", 6, "abcdef"),
        ("abcdef", 5, "abcd…"),
        ("abcdef", 1, "…"),
        ("abcdef", 0, ""),
        ("ab*cd", 4, "ab…"), // `\*` does not fit in the one place left
        ("ab*cd", 5, r"ab\*…"),
        ("ab cd", 4, "ab…"),     // no space before the ellipsis
        ("éééé", 3, "éé…"),      // characters, not bytes
        ("a@everyone", 5, "a…"), // a mention is one unit
    ];
    for (raw, max, expected) in cases {
        assert_eq!(
            escaped(raw, Target::Discord, false).fit(*max),
            *expected,
            "{raw:?} to {max}"
        );
    }
    assert_eq!(escaped("a<b", Target::Slack, false).fit(5), "a…");
    assert_eq!(escaped("a<b", Target::Slack, false).fit(6), "a&lt;b");
    assert_eq!(escaped("a<bc", Target::Slack, false).fit(6), "a&lt;…");
}

const HOSTILE: &str = "@everyone **boom** <!channel> [x](http://evil)";

fn hostile_event(kind: EventKind) -> Event {
    let mut event = sample_event(kind);
    event.ticket.subject = HOSTILE.into();
    event.ticket.department = HOSTILE.into();
    event.ticket.client = HOSTILE.into();
    for (_, v) in event.data.as_object_mut().unwrap().iter_mut() {
        if v.is_string() {
            *v = Value::String(HOSTILE.into());
        }
    }
    event
}

/// Every string anywhere in a JSON value, with its path.
fn strings(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => out.push((path.to_string(), s.clone())),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                strings(v, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                strings(v, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Each Markdown character is preceded by an odd number of backslashes.
fn assert_markdown_escaped(path: &str, s: &str) {
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if "*_~`|<>[]()".contains(*c) {
            let backslashes = chars[..i].iter().rev().take_while(|b| **b == '\\').count();
            assert!(
                backslashes % 2 == 1,
                "{path}: unescaped {c:?} at {i} in {s:?}"
            );
        }
    }
}

#[test]
fn hostile_text_cannot_ping_link_or_format() {
    for kind in EventKind::ALL.iter().filter(|k| !k.is_system()) {
        let event = hostile_event(*kind);

        let discord = render(WebhookFormat::Discord, &event, None);
        assert_eq!(discord["allowed_mentions"], json!({"parse": []}), "{kind}");
        let mut texts = Vec::new();
        strings(&discord, "discord", &mut texts);
        for (path, s) in &texts {
            assert!(!s.to_lowercase().contains("@everyone"), "{path}: {s:?}");
            assert_markdown_escaped(path, s);
        }

        let slack = render(WebhookFormat::Slack, &event, None);
        let mut texts = Vec::new();
        strings(&slack, "slack", &mut texts);
        for (path, s) in &texts {
            assert!(!s.contains('<') && !s.contains('>'), "{path}: {s:?}");
            assert!(!s.to_lowercase().contains("@everyone"), "{path}: {s:?}");
        }
        // Customer text only ever sits in plain_text objects.
        for block in slack["blocks"].as_array().unwrap() {
            for text in [&block["text"]]
                .into_iter()
                .chain(block["fields"].as_array().into_iter().flatten())
                .chain(block["elements"].as_array().into_iter().flatten())
            {
                if text.is_object() {
                    assert_eq!(text["type"], "plain_text", "{kind}: {block}");
                }
            }
        }

        let teams = render(WebhookFormat::Teams, &event, None);
        let mut texts = Vec::new();
        strings(
            &teams["attachments"][0]["content"]["body"],
            "teams",
            &mut texts,
        );
        for (path, s) in &texts {
            if path.ends_with(".type")
                || path.ends_with(".weight")
                || path.ends_with(".size")
                || path.ends_with(".color")
            {
                continue;
            }
            assert!(!s.to_lowercase().contains("@everyone"), "{path}: {s:?}");
            assert_markdown_escaped(path, s);
        }

        // The generic JSON is data: it carries the text as it was.
        let generic = render(WebhookFormat::Json, &event, None);
        assert_eq!(generic["subject"], HOSTILE, "{kind}");
    }
}

fn long_event(kind: EventKind) -> Event {
    // 10,000 characters, multi-byte ones and Markdown ones included, so the
    // escaped text is longer still.
    let long: String = "é*_<@everyone>\n".chars().cycle().take(10_000).collect();
    let mut event = sample_event(kind);
    event.ticket.subject = long.clone();
    event.ticket.client = long.clone();
    let data = event.data.as_object_mut().unwrap();
    data.insert("text_excerpt".into(), Value::String(long.clone()));
    data.insert("reason".into(), Value::String(long.clone()));
    for i in 0..40 {
        data.insert(
            format!("extra_{i:02}_{}", "k".repeat(300)),
            Value::String(long.clone()),
        );
    }
    event
}

fn chars(v: &Value) -> usize {
    v.as_str().map(|s| s.chars().count()).unwrap_or(0)
}

/// A cut text ends with `…`, not with half an escape.
fn assert_cut_cleanly(what: &str, s: &str) {
    assert!(
        s.ends_with('…'),
        "{what} was not cut: {}",
        &s[s.len().saturating_sub(40)..]
    );
    let before: Vec<char> = s.chars().rev().skip(1).take_while(|c| *c == '\\').collect();
    assert!(
        before.len().is_multiple_of(2),
        "{what} ends with a dangling backslash"
    );
}

#[test]
fn long_text_stays_within_discord_limits() {
    for kind in EventKind::ALL.iter().filter(|k| !k.is_system()) {
        let body = render(WebhookFormat::Discord, &long_event(*kind), Some(TEMPLATE));
        assert!(chars(&body["content"]) <= 2000, "{kind} content");
        let embeds = body["embeds"].as_array().unwrap();
        assert_eq!(embeds.len(), 1);
        let embed = &embeds[0];
        assert!(chars(&embed["title"]) <= 256, "{kind} title");
        assert_cut_cleanly("title", embed["title"].as_str().unwrap());
        assert!(chars(&embed["description"]) <= 4096, "{kind} description");
        let fields = embed["fields"].as_array().unwrap();
        assert!(
            !fields.is_empty() && fields.len() <= 25,
            "{kind}: {} fields",
            fields.len()
        );
        let mut total =
            chars(&embed["title"]) + chars(&embed["description"]) + chars(&embed["footer"]["text"]);
        for f in fields {
            assert!(chars(&f["name"]) <= 256, "{kind} field name");
            assert!(
                (1..=1024).contains(&chars(&f["value"])),
                "{kind} field value"
            );
            total += chars(&f["name"]) + chars(&f["value"]);
        }
        assert!(total <= 6000, "{kind}: embed total {total}");
        // Department and Priority survive; the description gave way first.
        assert_eq!(fields[0]["name"], "Department", "{kind}");
        assert_eq!(fields[1]["value"], "high", "{kind}");
    }
    // With few fields, the description gets its whole 4096.
    let mut event = sample_event(EventKind::TicketReplied);
    event.data["text_excerpt"] = Value::String("x".repeat(10_000));
    let body = render(WebhookFormat::Discord, &event, None);
    let description = body["embeds"][0]["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 4096);
    assert_cut_cleanly("description", description);
}

#[test]
fn long_text_stays_within_slack_limits() {
    for kind in EventKind::ALL.iter().filter(|k| !k.is_system()) {
        let body = render(WebhookFormat::Slack, &long_event(*kind), Some(TEMPLATE));
        assert!(chars(&body["text"]) <= 3000, "{kind} text");
        let blocks = body["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "{kind}: {} blocks", blocks.len());
        assert_eq!(blocks[0]["type"], "header");
        assert!(chars(&blocks[0]["text"]["text"]) <= 150, "{kind} header");
        assert_cut_cleanly("header", blocks[0]["text"]["text"].as_str().unwrap());
        for block in blocks {
            assert!(chars(&block["text"]["text"]) <= 3000, "{kind} section");
            if let Some(fields) = block["fields"].as_array() {
                assert!(fields.len() <= 10, "{kind} fields");
                for f in fields {
                    assert!(chars(&f["text"]) <= 2000, "{kind} field");
                }
            }
        }
        assert_eq!(blocks.last().unwrap()["type"], "context", "{kind}");
    }
}

#[test]
fn long_text_stays_within_teams_limits() {
    for kind in EventKind::ALL.iter().filter(|k| !k.is_system()) {
        let body = render(WebhookFormat::Teams, &long_event(*kind), Some(TEMPLATE));
        let size = serde_json::to_vec(&body).unwrap().len();
        assert!(size < 28 * 1024, "{kind}: {size} bytes");
        let card = &body["attachments"][0]["content"];
        assert!(chars(&card["body"][0]["text"]) <= 256, "{kind} title");
        let facts = card["body"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "FactSet")
            .unwrap()["facts"]
            .as_array()
            .unwrap()
            .clone();
        assert!(facts.len() <= 12, "{kind}");
        assert_eq!(
            card["actions"][0]["url"],
            "https://desk.example.com/tickets/123"
        );
    }
}

#[test]
fn sizes_are_shown_in_binary_units() {
    let cases: &[(u64, &str)] = &[
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (48213, "47.1 KiB"),
        (1024 * 1024, "1.0 MiB"),
        (5 * 1024 * 1024 + 1, "5.0 MiB"),
    ];
    for (bytes, shown) in cases {
        assert_eq!(human_size(*bytes), *shown, "{bytes}");
    }
}

/// One message's many files are one event: its chat summary counts them
/// and names the first few; the list itself is no field.
#[test]
fn one_event_for_many_files_counts_and_names_the_first() {
    let mut event = sample_event(EventKind::AttachmentRejected);
    let files: Vec<Value> = (0..12)
        .map(|i| json!({"filename": format!("s{i}.png"), "size": 10, "reason": "too_many_files"}))
        .collect();
    event.data = json!({"count": 12, "files": files});
    let m = Message::of(&event, None);
    let summary: String = m
        .summary
        .iter()
        .map(|p| match p {
            Part::Ours(s) | Part::Theirs(s) => s.as_str(),
        })
        .collect();
    assert_eq!(
        summary,
        "12 files refused on ticket #123: s0.png, s1.png, s2.png, s3.png, s4.png and 7 more"
    );
    let labels: Vec<&str> = m.fields.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels.iter().filter(|l| l.starts_with("File")).count(),
        1,
        "a count, not the list: {labels:?}"
    );
}

// ---------------------------------------------------------------------------
// System events (no ticket).

fn sample_system_event(kind: EventKind) -> SystemEvent {
    if kind == EventKind::CustomerErased {
        return SystemEvent {
            id: "evt_01JNEW0000SYSTEMEVENT0000".into(),
            kind,
            occurred_at: Utc.with_ymd_and_hms(2026, 3, 1, 3, 12, 0).unwrap(),
            data: json!({"tickets": 2, "messages": 5, "placeholders": 1, "files": 1}),
        };
    }
    let since = Utc.with_ymd_and_hms(2026, 3, 1, 3, 12, 0).unwrap();
    let until = Utc.with_ymd_and_hms(2026, 3, 1, 3, 49, 30).unwrap();
    let recovered = (kind == EventKind::SystemRecovered).then_some(until);
    let mut event = system_event(Fault::DiskFull, since, recovered, 0);
    event.id = "evt_01JNEW0000SYSTEMEVENT0000".into();
    event
}

#[test]
fn system_events_match_their_golden_files_in_every_format() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks");
    let mut failed = Vec::new();
    for (format, name) in FORMATS {
        // mailbox.auth_failed has its own shape (rules::webhooks::mailbox)
        for kind in EventKind::ALL
            .iter()
            .filter(|k| k.is_system() && **k != EventKind::MailboxAuthFailed)
        {
            let path = dir.join(name).join(format!("{}.json", kind.as_str()));
            let body = render_system(*format, &sample_system_event(*kind));
            let got = serde_json::to_string_pretty(&sorted(&body)).unwrap() + "\n";
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            let failed_path = path.with_extension("json.failed");
            if got == expected {
                let _ = std::fs::remove_file(&failed_path);
            } else {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&failed_path, &got).unwrap();
                failed.push(failed_path.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "differ; got written to:\n{}",
        failed.join("\n")
    );
}

#[test]
fn system_events_say_what_and_since_when() {
    let degraded = sample_system_event(EventKind::SystemDegraded);
    assert_eq!(
        render_system(WebhookFormat::Json, &degraded),
        json!({
            "id": "evt_01JNEW0000SYSTEMEVENT0000",
            "event": "system.degraded",
            "occurred_at": "2026-03-01T03:12:00Z",
            "data": {"fault": "disk_full", "cause": "disk full", "since": "2026-03-01T03:12:00Z"},
        })
    );
    assert_eq!(
        render_system(WebhookFormat::Auto, &degraded),
        render_system(WebhookFormat::Json, &degraded)
    );
    let discord = render_system(WebhookFormat::Discord, &degraded);
    assert_eq!(
        discord["content"],
        "Guichet cannot store mail: disk full since 03:12 UTC"
    );
    assert_eq!(discord["allowed_mentions"], json!({"parse": []}));
    let slack = render_system(WebhookFormat::Slack, &degraded);
    assert_eq!(
        slack["text"],
        "Guichet cannot store mail: disk full since 03:12 UTC"
    );

    let recovered = sample_system_event(EventKind::SystemRecovered);
    assert_eq!(recovered.data["duration_seconds"], 2250);
    assert_eq!(recovered.data["until"], "2026-03-01T03:49:30Z");
    let teams = render_system(WebhookFormat::Teams, &recovered);
    let text = teams.to_string();
    assert!(
        text.contains("Guichet stores mail again: disk full from 03:12 UTC to 03:49 UTC"),
        "{text}"
    );
    assert!(text.contains("37 min"), "{text}");
    // a fresh id each time, sorted by time
    let a = system_event(Fault::ReadOnly, Utc::now(), None, 1);
    let b = system_event(Fault::ReadOnly, Utc::now(), None, 2);
    assert_ne!(a.id, b.id);
    assert_eq!(a.data["cause"], "read-only file system");
}
