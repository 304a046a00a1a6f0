//! The sections that describe the help desk itself: `[helpdesk]` (with its
//! subject tag, ticket links and contact forms), `[[departments]]`,
//! `[trust]`, `[mail]`, `[retention]`.

use super::*;

impl Checker<'_> {
    /// `[mail]`: HTML with a text alternative (the default), or text only.
    pub(super) fn mail(&mut self, s: &Section<'_>) -> Checked<MailSettings> {
        self.known_keys(s, MAIL_KEYS);
        let html = self.boolean(s, "html", true);
        Some(MailSettings { html: html? })
    }

    /// `[retention]`: days after a ticket's closing; 0 keeps forever.
    pub(super) fn retention(&mut self, s: &Section<'_>) -> Checked<RetentionSettings> {
        self.known_keys(s, RETENTION_KEYS);
        let accepted = "0 (keep forever) or a number of days up to 36500";
        let closed_tickets_days = self.int_in(s, "closed_tickets_days", 0, 0..=MAX_DAYS, accepted);
        let raw_mail_days = self.int_in(s, "raw_mail_days", 0, 0..=MAX_DAYS, accepted);
        Some(RetentionSettings {
            closed_tickets_days: closed_tickets_days? as u32,
            raw_mail_days: raw_mail_days? as u32,
        })
    }

    pub(super) fn helpdesk(&mut self, s: &Section<'_>) -> Checked<HelpdeskSettings> {
        self.known_keys(s, HELPDESK_KEYS);
        let auto_close_days = self.int_in(
            s,
            "auto_close_days",
            7,
            0..=MAX_DAYS,
            "0 (never close automatically) or a number of days up to 36500",
        );
        let auto_close_scope = self.choice(
            s,
            "auto_close_scope",
            &[
                ("awaiting_customer", AutoCloseScope::AwaitingCustomer),
                ("any", AutoCloseScope::Any),
            ],
            AutoCloseScope::AwaitingCustomer,
            "scope",
        );
        let reopen_days = self
            .int_in(
                s,
                "reopen_days",
                7,
                -1..=MAX_DAYS,
                "-1 (unlimited), 0 (never: a reply opens a new ticket) or a positive number of days up to 36500",
            )
            .map(|n| match n {
                -1 => ReopenWindow::Unlimited,
                0 => ReopenWindow::Never,
                n => ReopenWindow::Days(n as u32),
            });
        let subject_tag = self.subject_tag(s);
        let language = self.choice(
            s,
            "language",
            &[("en", Language::En), ("fr", Language::Fr)],
            Language::En,
            "language",
        );
        let secret = match self.secret(s, "secret") {
            Err(()) => None,
            Ok(None) => {
                self.missing(
                    s,
                    "secret",
                    "`secret_env = \"GUICHET_SECRET\"`, `secret_file = \"PATH\"` or `secret = \"…\"`: at least 16 bytes, e.g. from `openssl rand -hex 32`",
                );
                None
            }
            Ok(Some(secret)) if secret.value.expose().len() < 16 => {
                let key = match &secret.source {
                    SecretSource::Literal => "secret",
                    SecretSource::Env(_) => "secret_env",
                    SecretSource::File(_) => "secret_file",
                };
                self.report(
                    Some(secret.span),
                    s.key(key),
                    format!(
                        "the secret is {} bytes long, too short for an HMAC key",
                        secret.value.expose().len()
                    ),
                    "at least 16 bytes, e.g. from `openssl rand -hex 32`",
                );
                None
            }
            Ok(Some(secret)) => Some(secret),
        };
        let max_auto_replies_per_hour = self.int_in(
            s,
            "max_auto_replies_per_hour",
            5,
            0..=1000,
            "0 (no automatic replies) or a number up to 1000",
        );
        let max_relays_per_hour = self.int_in(
            s,
            "max_relays_per_hour",
            20,
            1..=1000,
            "a number of relayed answers per ticket and hour, from 1 to 1000",
        );
        let max_participants = self.int_in(
            s,
            "max_participants",
            20,
            1..=1000,
            "a number of people per ticket (its customer included), from 1 to 1000",
        );
        let old_mail_days = self.int_in(
            s,
            "old_mail_days",
            3,
            0..=MAX_DAYS,
            "0 (no limit) or a number of days up to 36500",
        );
        let reply_to_participants = self.boolean(s, "reply_to_participants", true);
        let form_senders = self.form_senders(s);
        let ticket_url = self.ticket_url(s);
        let templates_dir = match self.path(
            s,
            "templates_dir",
            "a folder holding `en/<name>.txt` and `fr/<name>.txt` (relative to this settings file)",
        ) {
            Err(()) => None,
            Ok(found) => Some(found.map(|(path, _)| path)),
        };

        let secret = secret?;
        Some(HelpdeskSettings {
            auto_close_days: auto_close_days? as u32,
            auto_close_scope: auto_close_scope?.0,
            reopen_days: reopen_days?,
            subject_tag: subject_tag?,
            language: language?.0,
            secret: secret.value,
            secret_source: secret.source,
            max_auto_replies_per_hour: max_auto_replies_per_hour? as u32,
            max_relays_per_hour: max_relays_per_hour? as u32,
            max_participants: max_participants? as u32,
            old_mail_days: old_mail_days? as u32,
            reply_to_participants: reply_to_participants?,
            form_senders: form_senders?,
            ticket_url: ticket_url?,
            templates_dir: templates_dir?,
        })
    }

    pub(super) fn subject_tag(&mut self, s: &Section<'_>) -> Checked<String> {
        let accepted = "a short text with `{id}` once, e.g. `[#{id}]` or `[Ticket {id}]`";
        let (text, span) = match self.string(s, "subject_tag", accepted, false) {
            Err(()) => return None,
            Ok(None) => return Some("[#{id}]".to_string()),
            Ok(Some(found)) => found,
        };
        let count = text.matches("{id}").count();
        let message = if count == 0 {
            "has no `{id}`".to_string()
        } else if count > 1 {
            format!("has `{{id}}` {count} times")
        } else if text.replace("{id}", "").trim().is_empty() {
            "is only `{id}`: any number in a subject would name a ticket".to_string()
        } else if text.chars().any(char::is_control) {
            "contains a control character".to_string()
        } else {
            return Some(text.to_string());
        };
        self.report(Some(span), s.key("subject_tag"), message, accepted);
        None
    }

    pub(super) fn ticket_url(&mut self, s: &Section<'_>) -> Checked<Option<String>> {
        let accepted = "an http(s) URL with `{id}`, e.g. `https://desk.example.com/tickets/{id}`";
        let (text, span) = match self.string(s, "ticket_url", accepted, false) {
            Err(()) => return None,
            Ok(None) => return Some(None),
            Ok(Some(found)) => found,
        };
        let text = text.trim();
        let message = if !text.contains("{id}") {
            "has no `{id}`".to_string()
        } else {
            match url::Url::parse(&text.replace("{id}", "1")) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    return Some(Some(text.to_string()));
                }
                Ok(u) => format!("`{}:` is not a web address", u.scheme()),
                Err(e) => format!("is not a URL ({e})"),
            }
        };
        self.report(Some(span), s.key("ticket_url"), message, accepted);
        None
    }

    /// `helpdesk.reply_to_senders` (SPEC.md's name; `form_senders`, its
    /// name here before, is still read): addresses, or domains written
    /// `@domain`.
    pub(super) fn form_senders(&mut self, s: &Section<'_>) -> Checked<Vec<String>> {
        let accepted = "a list of sender addresses or `@domains` whose mail is on behalf of its Reply-To, e.g. `[\"noreply@shop.example.com\", \"@forms.example.com\"]`";
        let name = match (s.get("reply_to_senders"), s.get("form_senders")) {
            (Some(_), Some(older)) => {
                self.report(
                    Some(older.span()),
                    s.key("form_senders"),
                    "is the older name of `reply_to_senders`, given too: keep one".to_string(),
                    accepted,
                );
                return None;
            }
            (None, Some(_)) => "form_senders",
            _ => "reply_to_senders",
        };
        let key = s.key(name);
        let Some(v) = s.get(name) else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(v, key, "a list", accepted, false);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(text) => {
                    let t = text.trim().to_ascii_lowercase();
                    let valid = match t.strip_prefix('@') {
                        Some(domain) => {
                            domain.contains('.')
                                && !domain.contains('@')
                                && !domain.contains(char::is_whitespace)
                        }
                        None => EmailAddress::parse(&t).is_ok(),
                    };
                    if valid {
                        if !out.contains(&t) {
                            out.push(t);
                        }
                    } else {
                        self.report(
                            Some(item.span()),
                            key.clone(),
                            format!("`{text}` is neither an address nor an `@domain`"),
                            accepted,
                        );
                        ok = false;
                    }
                }
                _ => {
                    self.wrong_type(item, key.clone(), "a string", accepted, false);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    pub(super) fn trust(&mut self, s: &Section<'_>) -> Checked<TrustSettings> {
        self.known_keys(s, TRUST_KEYS);
        let accepted = "a list of mail server names, e.g. `[\"mx.example.com\"]`";
        let key = s.key("authserv_ids");
        let Some(v) = s.get("authserv_ids") else {
            return Some(TrustSettings::default());
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(v, key, "a list", accepted, false);
            return None;
        };
        let mut ids = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(text)
                    if !text.trim().is_empty() && !text.trim().contains(char::is_whitespace) =>
                {
                    let id = text.trim().to_ascii_lowercase();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                DeValue::String(text) => {
                    self.report(
                        Some(item.span()),
                        key.clone(),
                        format!("`{text}` is not a server name"),
                        accepted,
                    );
                    ok = false;
                }
                _ => {
                    self.wrong_type(item, key.clone(), "a string", accepted, false);
                    ok = false;
                }
            }
        }
        ok.then_some(TrustSettings { authserv_ids: ids })
    }

    /// An address of the settings: [`EmailAddress::parse`] plus the
    /// characters that a mail address cannot hold unquoted.
    pub(super) fn address(
        &mut self,
        v: &Spanned<DeValue<'_>>,
        key: String,
        accepted: &str,
    ) -> Checked<EmailAddress> {
        let DeValue::String(text) = v.get_ref() else {
            self.wrong_type(v, key, "an email address", accepted, false);
            return None;
        };
        match parse_address(text) {
            Ok(address) => Some(address),
            Err(message) => {
                self.report(Some(v.span()), key, message, accepted);
                None
            }
        }
    }

    pub(super) fn departments(
        &mut self,
        root: &Section<'_>,
        smtp_from: Option<&EmailAddress>,
    ) -> Checked<Vec<Department>> {
        let sections = self.table_list(root, "departments")?;
        if sections.is_empty() {
            let span = root.get("departments").map(|v| v.span());
            self.report(
                span,
                "departments",
                "no department",
                "at least one [[departments]] table with `name` and `address`",
            );
            return None;
        }
        // Each department is checked alone, then against the others with
        // whatever parts of it are valid, so that one bad department does
        // not hide a duplicate name or a second default elsewhere.
        let drafts: Vec<DepartmentDraft> = sections.iter().map(|s| self.department(s)).collect();
        let mut ok = drafts.iter().all(|d| d.complete);
        for (i, d) in drafts.iter().enumerate() {
            if let Some((name, span)) = &d.name
                && let Some(first) = drafts[..i].iter().position(|e| {
                    e.name
                        .as_ref()
                        .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
                })
            {
                self.report(
                    Some(span.clone()),
                    format!("departments[{i}].name"),
                    format!("`{name}` is also the name of departments[{first}]"),
                    "a name used by one department only",
                );
                ok = false;
            }
            if let Some((address, span)) = &d.address
                && let Some(first) = drafts[..i]
                    .iter()
                    .position(|e| e.address.as_ref().is_some_and(|(a, _)| a == address))
            {
                self.report(
                    Some(span.clone()),
                    format!("departments[{i}].address"),
                    format!("`{address}` is also the address of departments[{first}]"),
                    "an address used by one department only",
                );
                ok = false;
            }
            for (j, agent, span) in &d.agents {
                let base = agent.without_tag();
                let support = drafts
                    .iter()
                    .any(|e| e.address.as_ref().is_some_and(|(a, _)| *a == base));
                if support || smtp_from == Some(&base) {
                    self.report(
                        Some(span.clone()),
                        format!("departments[{i}].agents[{j}]"),
                        format!(
                            "`{agent}` is a support address of this helpdesk: its mail would loop"
                        ),
                        "the agents' own addresses, not a support address",
                    );
                    ok = false;
                }
            }
        }
        let defaults: Vec<usize> = (0..drafts.len())
            .filter(|&i| drafts[i].default.as_ref().is_some_and(|(d, _)| *d))
            .collect();
        if defaults.len() > 1 {
            let first = match &drafts[defaults[0]].name {
                Some((name, _)) => format!("`{name}`"),
                None => format!("departments[{}]", defaults[0]),
            };
            for &i in &defaults[1..] {
                let span = drafts[i]
                    .default
                    .as_ref()
                    .and_then(|(_, span)| span.clone());
                self.report(
                    span,
                    format!("departments[{i}].default"),
                    format!("a second default department ({first} is already the default)"),
                    "exactly one department with `default = true`",
                );
            }
            ok = false;
        } else if defaults.is_empty()
            && drafts.len() > 1
            && drafts.iter().all(|d| d.default.is_some())
        {
            self.report(
                sections[0].header.clone(),
                "departments",
                format!("none of the {} departments has `default = true`", drafts.len()),
                "exactly one department with `default = true`: it receives mail sent to no department's address",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        let single = drafts.len() == 1;
        drafts
            .into_iter()
            .map(|d| {
                Some(Department {
                    name: d.name?.0,
                    address: d.address?.0,
                    agents: d.agents.into_iter().map(|(_, a, _)| a).collect(),
                    default: d.default?.0 || single,
                })
            })
            .collect()
    }

    /// One `[[departments]]` table, as far as it is valid.
    pub(super) fn department(&mut self, s: &Section<'_>) -> DepartmentDraft {
        self.known_keys(s, DEPARTMENT_KEYS);
        let name = self
            .required_string(s, "name", "the department's name, e.g. `Technique`")
            .map(|(n, span)| (n.to_string(), span));
        let address_accepted = "a plain address, e.g. `support@example.com`";
        let address = match s.get("address") {
            None => {
                self.missing(
                    s,
                    "address",
                    &format!("{address_accepted}: mail sent to it lands in this department"),
                );
                None
            }
            Some(v) => self
                .address(v, s.key("address"), address_accepted)
                .and_then(|a| {
                    if a.tag().is_some() {
                        self.report(
                            Some(v.span()),
                            s.key("address"),
                            format!("`{a}` has a `+tag`, which Guichet uses for reply tokens"),
                            address_accepted,
                        );
                        None
                    } else {
                        Some((a, v.span()))
                    }
                }),
        };
        let agents_accepted = "a list of addresses, e.g. `[\"alice@example.com\"]`";
        let mut agents: Vec<(usize, EmailAddress, Span)> = Vec::new();
        let mut agents_ok = true;
        match s.get("agents") {
            None => {}
            Some(v) => match v.get_ref() {
                DeValue::Array(items) => {
                    for (j, item) in items.iter().enumerate() {
                        let key = format!("{}[{j}]", s.key("agents"));
                        match self.address(item, key, agents_accepted) {
                            Some(a) if agents.iter().any(|(_, b, _)| *b == a) => {}
                            Some(a) => agents.push((j, a, item.span())),
                            None => agents_ok = false,
                        }
                    }
                }
                _ => {
                    self.wrong_type(v, s.key("agents"), "a list", agents_accepted, false);
                    agents_ok = false;
                }
            },
        }
        let default = self
            .boolean(s, "default", false)
            .map(|d| (d, s.get("default").map(|v| v.span())));
        DepartmentDraft {
            complete: name.is_some() && address.is_some() && agents_ok && default.is_some(),
            name,
            address,
            agents,
            default,
        }
    }
}
