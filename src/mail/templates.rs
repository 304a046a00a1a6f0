//! The texts of outgoing mail, one minijinja template per kind and language
//! (`templates/en/*.txt`, `templates/fr/*.txt`), built into the binary. An
//! admin overrides any of them by putting a file of the same name under the
//! directory `helpdesk.templates_dir` names (`<dir>/<lang>/<name>.txt`).
//!
//! A template's first line is `Subject: …`, then a blank line, then the body.

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

macro_rules! builtin {
    ($($lang:literal / $name:literal),+ $(,)?) => {
        &[$((concat!($lang, "/", $name), include_str!(concat!("../../templates/", $lang, "/", $name, ".txt")))),+]
    };
}

const BUILTIN: &[(&str, &str)] = builtin!(
    "en" / "acknowledgement",
    "fr" / "acknowledgement",
    "en" / "agent_copy",
    "fr" / "agent_copy",
    "en" / "agent_reply",
    "fr" / "agent_reply",
    "en" / "agent_notice",
    "fr" / "agent_notice",
    "en" / "closed_notice",
    "fr" / "closed_notice",
    "en" / "reopened",
    "fr" / "reopened",
    "en" / "new_linked",
    "fr" / "new_linked",
    "en" / "refused_attachments",
    "fr" / "refused_attachments",
    "en" / "closed_by_agent",
    "fr" / "closed_by_agent",
);

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
        // mail is plain text: no HTML escaping
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
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
        Ok(Self { env })
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
        std::fs::write(dir.path().join("en/reopened.txt"), "no subject\n").unwrap();
        assert!(Templates::load(Some(dir.path())).is_err());
    }
}
