//! Who may speak as an agent (SPEC "Senders").
//!
//! A mail whose `From` is an agent's address is believed only with a proof:
//! a valid reply token (checked by the caller), or a DKIM, SPF or DMARC
//! `pass` for the `From` domain in an `Authentication-Results` header
//! (RFC 8601) written by a server the admin trusts. Anyone can write an
//! `Authentication-Results` header into their own mail, so headers from
//! other servers are ignored; the trusted server must, as RFC 8601 §5 asks,
//! remove headers that falsely claim its own id before delivery. Pure.

use crate::domain::EmailAddress;

/// Who sent a mail, as far as trust goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderClass {
    /// Not an agent address: an ordinary customer.
    Customer,
    /// An agent address, and this is how we know it is them.
    Agent { proof: String },
    /// `From` is an agent's address but nothing proves it: treat the mail
    /// as a customer's and never relay it.
    SpoofedAgent { why: String },
}

/// One `Authentication-Results` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// The server that wrote the header, lower case. Empty when the header
    /// has none (Microsoft 365 writes such headers); such a header is never
    /// trusted.
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

/// One `method=result` with its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// Lower case, without a `/version`: `dkim`, `spf`, `dmarc`, …
    pub method: String,
    /// Lower case: `pass`, `fail`, `none`, …
    pub result: String,
    /// `(name, value)` in order, names lower case (`header.d`,
    /// `smtp.mailfrom`, `reason`, …), values unquoted.
    pub props: Vec<(String, String)>,
}

impl MethodResult {
    /// The first value of a property, by case-insensitive name.
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Decide whether a mail from `from` may be treated as an agent's.
/// `auth_results` are the raw values of every `Authentication-Results`
/// header of the mail; `trusted_authserv_ids` come from the settings.
/// Who the customer of a mail is (issue 20): its sender, or, for a
/// contact form the admin named (`helpdesk.form_senders`), the person in
/// its `Reply-To`. Off for every other sender: an unproven `Reply-To`
/// must not become a way to have our mail sent to a third party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Customer {
    /// The sender (`From`).
    Sender,
    /// The form's mail is on behalf of `person`.
    OnBehalf { person: EmailAddress },
}

/// [`Customer`] of a mail from `from` with these `Reply-To` addresses;
/// `is_own`: our support and agent addresses, never a form's customer.
pub fn customer_of(
    from: &EmailAddress,
    reply_to: &[EmailAddress],
    is_form_sender: bool,
    is_own: impl Fn(&EmailAddress) -> bool,
) -> Customer {
    if !is_form_sender {
        return Customer::Sender;
    }
    match reply_to.iter().find(|a| *a != from && !is_own(a)) {
        Some(person) => Customer::OnBehalf {
            person: person.clone(),
        },
        None => Customer::Sender,
    }
}

pub fn classify_sender(
    from: &EmailAddress,
    is_agent_address: bool,
    token_valid: bool,
    auth_results: &[&str],
    trusted_authserv_ids: &[String],
) -> SenderClass {
    if !is_agent_address {
        return SenderClass::Customer;
    }
    if token_valid {
        return SenderClass::Agent {
            proof: "valid reply token".to_string(),
        };
    }
    let domain = from.domain();
    let mut ignored: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for raw in auth_results {
        let Some(ar) = parse_authentication_results(raw) else {
            continue;
        };
        let trusted = !ar.authserv_id.is_empty()
            && trusted_authserv_ids
                .iter()
                .any(|t| t.trim().eq_ignore_ascii_case(&ar.authserv_id));
        if !trusted {
            let id = if ar.authserv_id.is_empty() {
                "(no authserv-id)"
            } else {
                ar.authserv_id.as_str()
            };
            if !ignored.iter().any(|i| i == id) {
                ignored.push(id.to_string());
            }
            continue;
        }
        for r in &ar.results {
            if let Some(proof) = proves_domain(r, domain) {
                return SenderClass::Agent {
                    proof: format!("{proof} (by {})", ar.authserv_id),
                };
            }
            seen.push(format!("{}={}", r.method, r.result));
        }
    }
    let mut why = format!("no valid reply token, and no DKIM/SPF/DMARC pass for {domain}");
    if trusted_authserv_ids.is_empty() {
        why.push_str("; no trusted authserv-id is configured");
    } else if seen.is_empty() {
        why.push_str(" from a trusted server");
    } else {
        why.push_str(&format!(
            " from a trusted server (it said: {})",
            seen.join(", ")
        ));
    }
    if !ignored.is_empty() {
        why.push_str(&format!(
            "; ignored Authentication-Results from untrusted {}",
            ignored.join(", ")
        ));
    }
    SenderClass::SpoofedAgent { why }
}

/// A result that proves the mail comes from `domain`: DKIM pass signed by
/// that domain (`header.d`, or the domain of `header.i`), SPF pass for an
/// envelope sender in that domain, or DMARC pass for that `header.from`.
/// A signing/envelope domain that is a parent of `domain` counts too
/// (DMARC's relaxed alignment); a sibling or a child does not.
fn proves_domain(r: &MethodResult, domain: &str) -> Option<String> {
    if r.result != "pass" {
        return None;
    }
    let candidates: &[&str] = match r.method.as_str() {
        "dkim" => &["header.d", "header.i"],
        "spf" => &["smtp.mailfrom"],
        "dmarc" => &["header.from"],
        _ => &[],
    };
    candidates.iter().find_map(|name| {
        let value = r.prop(name)?;
        aligned(domain_of(value), domain).then(|| format!("{}=pass {name}={value}", r.method))
    })
}

/// `user@example.com`, `@example.com`, `<user@example.com>` or
/// `example.com` → `example.com`, lower case.
fn domain_of(value: &str) -> String {
    let v = value.trim().trim_start_matches('<').trim_end_matches('>');
    let d = v.rsplit_once('@').map(|(_, d)| d).unwrap_or(v);
    d.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn aligned(authenticated: String, from_domain: &str) -> bool {
    let from_domain = from_domain.to_ascii_lowercase();
    if authenticated.is_empty() || !authenticated.contains('.') {
        return false;
    }
    from_domain == authenticated || from_domain.ends_with(&format!(".{authenticated}"))
}

/// Parse one `Authentication-Results` value (RFC 8601): the authserv-id and
/// optional version, then `;`-separated `method=result` with `reason=` and
/// `ptype.property=value` properties. Comments in parentheses, folding and
/// quoted values are handled. `None` when nothing can be read.
pub fn parse_authentication_results(value: &str) -> Option<AuthResults> {
    let mut v = value.trim();
    if v.len() >= 23 && v[..23].eq_ignore_ascii_case("authentication-results:") {
        v = &v[23..];
    }
    let cleaned = strip_comments(v);
    let segments = split_outside_quotes(&cleaned, ';');
    let mut segments = segments.iter().map(|s| s.trim()).peekable();
    let first = segments.peek()?.to_string();

    let mut authserv_id = String::new();
    if !first.contains('=') {
        // authserv-id [version]
        segments.next();
        let id = first.split_whitespace().next().unwrap_or("");
        authserv_id = unquote(id).to_ascii_lowercase();
        if authserv_id.is_empty() {
            return None;
        }
    }

    let mut results: Vec<MethodResult> = Vec::new();
    for segment in segments {
        for (i, (key, value)) in pairs(segment).into_iter().enumerate() {
            let key_lower = key.to_ascii_lowercase();
            let Some(value) = value else {
                continue; // "none", a stray word
            };
            let method = key_lower.split('/').next().unwrap_or("").to_string();
            let starts_result = i == 0 || (!key_lower.contains('.') && is_method(&method));
            if starts_result {
                results.push(MethodResult {
                    method,
                    result: value.to_ascii_lowercase(),
                    props: Vec::new(),
                });
            } else if let Some(last) = results.last_mut() {
                last.props.push((key_lower, value));
            }
        }
    }
    if authserv_id.is_empty() && results.is_empty() {
        return None;
    }
    Some(AuthResults {
        authserv_id,
        results,
    })
}

/// Method names of the IANA registry (and common extensions); a bare
/// `name=value` with one of these starts a new result even when a sender
/// forgot the `;` before it.
fn is_method(name: &str) -> bool {
    matches!(
        name,
        "auth"
            | "dkim"
            | "dkim-adsp"
            | "dkim-atps"
            | "domainkeys"
            | "spf"
            | "sender-id"
            | "dmarc"
            | "arc"
            | "iprev"
            | "smime"
            | "dnswl"
            | "bimi"
            | "rrvs"
            | "vbr"
            | "compauth"
    ) || name.starts_with("x-")
}

/// Remove `( … )` comments (nested, with `\` escapes), outside quoted
/// strings; each becomes one space. CR and LF become spaces too.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if depth > 0 || in_quote => {
                let next = chars.next();
                if depth == 0 {
                    out.push(c);
                    if let Some(n) = next {
                        out.push(n);
                    }
                }
            }
            '"' if depth == 0 => {
                in_quote = !in_quote;
                out.push(c);
            }
            '(' if !in_quote => {
                depth += 1;
            }
            ')' if !in_quote && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth > 0 => {}
            '\r' | '\n' | '\t' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut in_quote = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && in_quote {
            escaped = true;
        } else if c == '"' {
            in_quote = !in_quote;
        } else if c == sep && !in_quote {
            out.push(String::new());
            continue;
        }
        out.last_mut().expect("never empty").push(c);
    }
    out
}

/// `key = value` pairs of one segment, in order; a word without `=` gives
/// `(word, None)`. Values may be quoted strings (unquoted here), possibly
/// followed by more characters (`"john doe"@example.com`).
fn pairs(segment: &str) -> Vec<(String, Option<String>)> {
    let chars: Vec<char> = segment.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        let mut j = i;
        skip_ws(&mut j);
        if j < chars.len() && chars[j] == '=' {
            i = j + 1;
            skip_ws(&mut i);
            let mut value = String::new();
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '"' {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' && i + 1 < chars.len() {
                            i += 1;
                        }
                        value.push(chars[i]);
                        i += 1;
                    }
                    i += 1; // closing quote
                } else {
                    value.push(chars[i]);
                    i += 1;
                }
            }
            out.push((key, Some(value)));
        } else {
            out.push((unquote(&key), None));
        }
    }
    out
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

#[cfg(test)]
mod customer_tests {
    use super::*;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn a_named_form_speaks_for_its_reply_to_and_nobody_else_does() {
        let form = a("noreply@shop.test");
        let jane = a("jane@home.test");
        let own = |x: &EmailAddress| x.as_str().ends_with("@support.test");
        let on_behalf = Customer::OnBehalf {
            person: jane.clone(),
        };
        // (form sender named, Reply-To, customer)
        let table = [
            (true, vec![jane.clone()], on_behalf.clone()),
            (true, vec![form.clone(), jane.clone()], on_behalf),
            (true, vec![], Customer::Sender),
            (true, vec![a("help@support.test")], Customer::Sender),
            (false, vec![jane.clone()], Customer::Sender),
        ];
        for (named, reply_to, want) in table {
            assert_eq!(
                customer_of(&form, &reply_to, named, own),
                want,
                "{named} {reply_to:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Props<'a> = Vec<(&'a str, &'a str)>;
    type Row<'a> = (&'a str, Vec<(&'a str, &'a str, Props<'a>)>);
    /// (method, result, props), owned.
    type Flat = Vec<(String, String, Vec<(String, String)>)>;

    fn flat(ar: &AuthResults) -> Flat {
        ar.results
            .iter()
            .map(|r| (r.method.clone(), r.result.clone(), r.props.clone()))
            .collect()
    }

    fn want(rows: &[(&str, &str, Props<'_>)]) -> Flat {
        rows.iter()
            .map(|(m, r, p)| {
                (
                    m.to_string(),
                    r.to_string(),
                    p.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn parse_real_world_shapes() {
        let cases: Vec<(&str, Row)> = vec![
            // Gmail, folded, comments
            (
                "mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=20230601 header.b=AbCd1234;\r\n       \
                 spf=pass (google.com: domain of agent@example.com designates 203.0.113.5 as permitted sender) smtp.mailfrom=agent@example.com;\r\n       \
                 dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com",
                (
                    "mx.google.com",
                    vec![
                        (
                            "dkim",
                            "pass",
                            vec![
                                ("header.i", "@example.com"),
                                ("header.s", "20230601"),
                                ("header.b", "AbCd1234"),
                            ],
                        ),
                        ("spf", "pass", vec![("smtp.mailfrom", "agent@example.com")]),
                        ("dmarc", "pass", vec![("header.from", "example.com")]),
                    ],
                ),
            ),
            // Microsoft 365: no authserv-id, no space after ';', extension keys
            (
                "spf=pass (sender IP is 40.107.22.1) smtp.mailfrom=example.com; dkim=pass (signature was verified)\r\n header.d=example.com;dmarc=pass action=none header.from=example.com;compauth=pass reason=100",
                (
                    "",
                    vec![
                        ("spf", "pass", vec![("smtp.mailfrom", "example.com")]),
                        ("dkim", "pass", vec![("header.d", "example.com")]),
                        (
                            "dmarc",
                            "pass",
                            vec![("action", "none"), ("header.from", "example.com")],
                        ),
                        ("compauth", "pass", vec![("reason", "100")]),
                    ],
                ),
            ),
            // Postfix + OpenDKIM: a ';' inside a comment, a quoted value
            (
                "mail.example.org;\n\tdkim=pass (2048-bit key; unprotected) header.d=example.com header.i=@example.com header.a=rsa-sha256 header.s=mail header.b=\"AbCdEf12\";\n\tdkim-atps=neutral",
                (
                    "mail.example.org",
                    vec![
                        (
                            "dkim",
                            "pass",
                            vec![
                                ("header.d", "example.com"),
                                ("header.i", "@example.com"),
                                ("header.a", "rsa-sha256"),
                                ("header.s", "mail"),
                                ("header.b", "AbCdEf12"),
                            ],
                        ),
                        ("dkim-atps", "neutral", vec![]),
                    ],
                ),
            ),
            // OpenDMARC
            (
                "mail.example.org; dmarc=pass (p=reject dis=none) header.from=example.com",
                (
                    "mail.example.org",
                    vec![("dmarc", "pass", vec![("header.from", "example.com")])],
                ),
            ),
            // version after the id, angle brackets, upper case
            (
                "Mail.Example.ORG 1; SPF=Pass smtp.mailfrom=<agent@example.com>",
                (
                    "mail.example.org",
                    vec![(
                        "spf",
                        "pass",
                        vec![("smtp.mailfrom", "<agent@example.com>")],
                    )],
                ),
            ),
            // nothing to report
            ("mail.example.org; none", ("mail.example.org", vec![])),
            // RFC 8601 appendix B shapes
            (
                "example.com; auth=pass (cram-md5) smtp.auth=sender@example.net; spf=pass smtp.mailfrom=example.net",
                (
                    "example.com",
                    vec![
                        ("auth", "pass", vec![("smtp.auth", "sender@example.net")]),
                        ("spf", "pass", vec![("smtp.mailfrom", "example.net")]),
                    ],
                ),
            ),
            (
                "example.com; sender-id=fail header.from=example.com; dkim=pass (good signature) header.d=example.com",
                (
                    "example.com",
                    vec![
                        ("sender-id", "fail", vec![("header.from", "example.com")]),
                        ("dkim", "pass", vec![("header.d", "example.com")]),
                    ],
                ),
            ),
            // quoted reason with spaces, nested comments with an escaped paren
            (
                "mx.example.org; dkim=fail reason=\"signature verification failed\" (bad (very \\) bad) sig) header.d=example.com",
                (
                    "mx.example.org",
                    vec![(
                        "dkim",
                        "fail",
                        vec![
                            ("reason", "signature verification failed"),
                            ("header.d", "example.com"),
                        ],
                    )],
                ),
            ),
            // method version, spaces around '=', quoted local part
            (
                "mx.example.org; dkim/1 = pass header.d = example.com; spf=pass smtp.mailfrom=\"john doe\"@example.com",
                (
                    "mx.example.org",
                    vec![
                        ("dkim", "pass", vec![("header.d", "example.com")]),
                        (
                            "spf",
                            "pass",
                            vec![("smtp.mailfrom", "john doe@example.com")],
                        ),
                    ],
                ),
            ),
            // Rspamd, IPv6 in a comment, the header name left in
            (
                "Authentication-Results: mx.example.org;\n\tdkim=pass header.d=example.com header.s=dkim header.b=abc;\n\t\
                 spf=pass (mx.example.org: domain of agent@example.com designates 2001:db8::1 as permitted sender) smtp.mailfrom=agent@example.com;\n\t\
                 dmarc=pass (policy=reject) header.from=example.com",
                (
                    "mx.example.org",
                    vec![
                        (
                            "dkim",
                            "pass",
                            vec![
                                ("header.d", "example.com"),
                                ("header.s", "dkim"),
                                ("header.b", "abc"),
                            ],
                        ),
                        ("spf", "pass", vec![("smtp.mailfrom", "agent@example.com")]),
                        ("dmarc", "pass", vec![("header.from", "example.com")]),
                    ],
                ),
            ),
            // a missing ';' between two results
            (
                "mx.example.org; dkim=pass header.d=example.com spf=fail smtp.mailfrom=example.com",
                (
                    "mx.example.org",
                    vec![
                        ("dkim", "pass", vec![("header.d", "example.com")]),
                        ("spf", "fail", vec![("smtp.mailfrom", "example.com")]),
                    ],
                ),
            ),
        ];
        for (input, (id, results)) in &cases {
            let ar = parse_authentication_results(input)
                .unwrap_or_else(|| panic!("no parse: {input:?}"));
            assert_eq!(ar.authserv_id, *id, "authserv-id of {input:?}");
            assert_eq!(flat(&ar), want(results), "results of {input:?}");
        }
        for empty in ["", "   ", ";", "(just a comment)"] {
            assert_eq!(parse_authentication_results(empty), None, "{empty:?}");
        }
    }

    #[test]
    fn sender_classes_table() {
        let trusted = vec!["mail.example.org".to_string(), "MX.Google.com".to_string()];
        // (from, is_agent, token, A-R headers, want: "customer" | "agent:<proof contains>" | "spoofed:<why contains>")
        let cases: Vec<(&str, bool, bool, Vec<&str>, &str)> = vec![
            ("alice@customer.example", false, false, vec![], "customer"),
            (
                "alice@customer.example",
                false,
                true,
                vec!["mail.example.org; dkim=pass header.d=customer.example"],
                "customer",
            ),
            (
                "agent@example.com",
                true,
                true,
                vec![],
                "agent:valid reply token",
            ),
            (
                "agent@example.com",
                true,
                false,
                vec![],
                "spoofed:no valid reply token",
            ),
            (
                "agent@example.com",
                true,
                false,
                vec![
                    "mail.example.org; dkim=pass (2048-bit key; unprotected) header.d=example.com header.b=\"x\"",
                ],
                "agent:dkim=pass header.d=example.com (by mail.example.org)",
            ),
            (
                "agent@example.com",
                true,
                false,
                vec!["mx.google.com;\r\n dkim=pass header.i=@example.com header.s=s header.b=b"],
                "agent:dkim=pass header.i=@example.com (by mx.google.com)",
            ),
            (
                "agent@example.com",
                true,
                false,
                vec!["mail.example.org; spf=pass (ok) smtp.mailfrom=bounces@example.com"],
                "agent:spf=pass smtp.mailfrom=bounces@example.com",
            ),
            (
                "agent@example.com",
                true,
                false,
                vec!["mail.example.org; dmarc=pass (p=reject dis=none) header.from=example.com"],
                "agent:dmarc=pass header.from=example.com",
            ),
            // signed by someone else
            (
                "agent@example.com",
                true,
                false,
                vec!["mail.example.org; dkim=pass header.d=evil.example"],
                "spoofed:it said: dkim=pass",
            ),
            // look-alike domains
            (
                "agent@example.com",
                true,
                false,
                vec!["mail.example.org; spf=pass smtp.mailfrom=example.com.evil.example"],
                "spoofed:",
            ),
            (
                "agent@example.com",
                true,
                false,
                vec!["mail.example.org; dkim=pass header.d=notexample.com"],
                "spoofed:",
            ),
            // SPF for the HELO name only proves nothing about the From
            (
                "agent@example.com",
                true,
                false,
                vec!["mail.example.org; spf=pass smtp.helo=example.com"],
                "spoofed:it said: spf=pass",
            ),
            // dkim pass without a domain
            (
                "agent@example.com",
                true,
                false,
                vec!["mail.example.org; dkim=pass"],
                "spoofed:",
            ),
            // a parent domain's signature counts for a subdomain, not the reverse
            (
                "agent@eu.example.com",
                true,
                false,
                vec!["mail.example.org; dkim=pass header.d=example.com"],
                "agent:header.d=example.com",
            ),
            (
                "agent@example.com",
                true,
                false,
                vec!["mail.example.org; dkim=pass header.d=eu.example.com"],
                "spoofed:",
            ),
            (
                "agent@example.com",
                true,
                false,
                vec!["mail.example.org; dkim=pass header.d=com"],
                "spoofed:",
            ),
            // an attacker's own header, with a pass, from an untrusted id
            (
                "agent@example.com",
                true,
                false,
                vec![
                    "mail.example.org; dkim=fail reason=\"bad signature\" header.d=example.com; spf=softfail smtp.mailfrom=example.com",
                    "mx.evil.example; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com",
                ],
                "spoofed:ignored Authentication-Results from untrusted mx.evil.example",
            ),
            // Microsoft 365 headers carry no authserv-id: never trusted
            (
                "agent@example.com",
                true,
                false,
                vec![
                    "spf=pass (sender IP is 40.107.22.1) smtp.mailfrom=example.com; dkim=pass (signature was verified) header.d=example.com",
                ],
                "spoofed:untrusted (no authserv-id)",
            ),
            // several headers: the trusted one with the pass counts
            (
                "agent@example.com",
                true,
                false,
                vec![
                    "mx.other.example; dkim=pass header.d=example.com",
                    "mail.example.org; dkim=none",
                    "mail.example.org; dmarc=pass header.from=example.com",
                ],
                "agent:dmarc=pass header.from=example.com (by mail.example.org)",
            ),
        ];
        for (from, is_agent, token, headers, want) in &cases {
            let addr = EmailAddress::parse(from).expect("address");
            let got = classify_sender(&addr, *is_agent, *token, headers, &trusted);
            let ok = match (&got, want.split_once(':')) {
                (SenderClass::Customer, None) => *want == "customer",
                (SenderClass::Agent { proof }, Some(("agent", p))) => proof.contains(p),
                (SenderClass::SpoofedAgent { why }, Some(("spoofed", w))) => why.contains(w),
                _ => false,
            };
            assert!(
                ok,
                "from {from} agent={is_agent} token={token} headers {headers:?}: want {want}, got {got:?}"
            );
        }
    }

    #[test]
    fn nothing_is_trusted_without_configured_servers() {
        let addr = EmailAddress::parse("agent@example.com").expect("address");
        let got = classify_sender(
            &addr,
            true,
            false,
            &["mail.example.org; dkim=pass header.d=example.com"],
            &[],
        );
        let SenderClass::SpoofedAgent { why } = got else {
            panic!("{got:?}")
        };
        assert!(
            why.contains("no trusted authserv-id is configured"),
            "{why}"
        );
    }
}
