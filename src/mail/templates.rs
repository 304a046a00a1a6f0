//! The texts of outgoing mail, one minijinja template per kind and language
//! (`templates/en/*.txt`, `templates/fr/*.txt`), built into the binary. An
//! admin overrides any of them by putting a file of the same name under the
//! directory `helpdesk.templates_dir` names (`<dir>/<lang>/<name>.txt`).
//!
//! A template's first line is `Subject: …`, then a blank line, then the body.
//!
//! Beside each text template is its HTML alternative (`<name>.html`, no
//! subject line; values are HTML-escaped, and `html` variables are
//! sanitized HTML the caller gives with `|safe`), overridable the same way
//! (`<dir>/<lang>/<name>.html`).

use std::path::Path;

use anyhow::{Context, bail};
use minijinja::Environment;

use crate::settings::Language;

/// Every template kind, in the order the README lists them.
pub const KINDS: &[&str] = &[
    "acknowledgement",
    "agent_copy",
    "agent_reply",
    "agent_notice",
    "closed_notice",
    "reopened",
    "new_linked",
    "refused_attachments",
    "closed_by_agent",
];

/// Every built-in template with the given extension (`.txt`, `.html`),
/// as `("<lang>/<name>", source)`, compiled into the binary. One list for
/// both kinds, so that a template cannot have one side only.
macro_rules! builtin {
    ($ext:literal) => {
        builtin!($ext;
            "acknowledgement", "agent_copy", "agent_reply", "agent_notice", "closed_notice",
            "reopened", "new_linked", "refused_attachments", "closed_by_agent")
    };
    ($ext:literal; $($name:literal),+) => {
        &[$(
            (concat!("en/", $name), include_str!(concat!("../../templates/en/", $name, $ext))),
            (concat!("fr/", $name), include_str!(concat!("../../templates/fr/", $name, $ext))),
        )+]
    };
}

const BUILTIN: &[(&str, &str)] = builtin!(".txt");
const BUILTIN_HTML: &[(&str, &str)] = builtin!(".html");

pub struct Templates {
    env: Environment<'static>,
}

/// A rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

impl Templates {
    /// The built-in templates, each replaced by `<dir>/<lang>/<name>.txt`
    /// when that file exists. A template that does not compile is an error
    /// naming the file.
    pub fn load(override_dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        // the text templates are plain text: no escaping; the HTML ones
        // escape every value
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        for (name, text) in BUILTIN {
            let source = match override_dir.map(|d| d.join(format!("{name}.txt"))) {
                Some(path) if path.exists() => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read template {}", path.display()))?,
                _ => text.to_string(),
            };
            if !source.starts_with("Subject:") {
                bail!("template {name} must start with a `Subject:` line");
            }
            env.add_template_owned(name.to_string(), source)
                .with_context(|| format!("template {name} does not compile"))?;
        }
        for (name, text) in BUILTIN_HTML {
            let source = match override_dir.map(|d| d.join(format!("{name}.html"))) {
                Some(path) if path.exists() => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read template {}", path.display()))?,
                _ => text.to_string(),
            };
            env.add_template_owned(format!("{name}.html"), source)
                .with_context(|| format!("template {name}.html does not compile"))?;
        }
        Ok(Self { env })
    }

    /// The HTML alternative of a kind (see the module's notes).
    pub fn render_html(
        &self,
        lang: Language,
        kind: &str,
        ctx: minijinja::Value,
    ) -> anyhow::Result<String> {
        let name = format!("{}/{kind}.html", lang.code());
        self.env
            .get_template(&name)
            .with_context(|| format!("no template {name}"))?
            .render(ctx)
            .with_context(|| format!("cannot render template {name}"))
    }

    pub fn render(
        &self,
        lang: Language,
        kind: &str,
        ctx: minijinja::Value,
    ) -> anyhow::Result<Rendered> {
        let name = format!("{}/{kind}", lang.code());
        let text = self
            .env
            .get_template(&name)
            .with_context(|| format!("no template {name}"))?
            .render(ctx)
            .with_context(|| format!("cannot render template {name}"))?;
        let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = first
            .strip_prefix("Subject:")
            .unwrap_or(first)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut body = body.trim_start_matches(['\r', '\n']).to_string();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Ok(Rendered { subject, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn every_kind_renders_in_both_languages() {
        let t = Templates::load(None).unwrap();
        for lang in [Language::En, Language::Fr] {
            for kind in KINDS {
                let r = t
                    .render(
                        lang,
                        kind,
                        context!(ticket_id => 7, subject_tag => "[#7]", subject => "Printer",
                                 team => "Support", refused => vec![context!(filename => "a.exe", reason => "no")],
                                 reopen => "days", days => 7, enabled => true),
                    )
                    .unwrap();
                assert!(!r.subject.is_empty(), "{kind}");
                assert!(!r.body.is_empty(), "{kind}");
                let html = t
                    .render_html(
                        lang,
                        kind,
                        context!(ticket_id => 7, subject_tag => "[#7]", subject => "Printer <b>",
                                 team => "Support", html => "<p>words</p>", name => "<script>",
                                 refused => vec![context!(filename => "a.exe", reason => "no")],
                                 earlier => vec![context!(who => "ann", date => "d", text => "x<y")],
                                 reopen => "days", days => 7, enabled => true),
                    )
                    .unwrap();
                assert!(html.contains("</html>"), "{kind}");
                // values are escaped, the sanitized body is not
                assert!(
                    !html.contains("<script>") && !html.contains("x<y"),
                    "{kind}: {html}"
                );
                if *kind == "agent_copy" || *kind == "agent_reply" {
                    assert!(html.contains("<p>words</p>"), "{kind}");
                }
            }
        }
    }

    #[test]
    fn an_admin_file_replaces_the_builtin_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::write(
            dir.path().join("en/acknowledgement.txt"),
            "Subject: Got it {{ subject_tag }}\n\nThanks!\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t
            .render(
                Language::En,
                "acknowledgement",
                context!(subject_tag => "[#1]"),
            )
            .unwrap();
        assert_eq!(r.subject, "Got it [#1]");
        assert_eq!(r.body, "Thanks!\n");
        std::fs::write(
            dir.path().join("en/reopened.html"),
            "<p>Back {{ ticket_id }}</p>",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let html = t
            .render_html(Language::En, "reopened", context!(ticket_id => 3))
            .unwrap();
        assert_eq!(html, "<p>Back 3</p>");
        std::fs::write(dir.path().join("en/reopened.html"), "{% if %}").unwrap();
        assert!(Templates::load(Some(dir.path())).is_err());
        std::fs::remove_file(dir.path().join("en/reopened.html")).unwrap();
        std::fs::write(dir.path().join("en/reopened.txt"), "no subject\n").unwrap();
        assert!(Templates::load(Some(dir.path())).is_err());
    }
}
