//! `[attachments]` (the extensions allowed, where files go) and
//! `[antivirus]`.

use super::*;

impl Checker<'_> {
    pub(super) fn attachments(&mut self, s: &Section<'_>) -> Checked<AttachmentSettings> {
        self.known_keys(s, ATTACHMENT_KEYS);
        let enabled = self.boolean(s, "enabled", true);
        let max_size_mb = self.int_in(
            s,
            "max_size_mb",
            5,
            1..=1024,
            "a whole number of MiB from 1 to 1024",
        );
        let max_files = self.int_in(
            s,
            "max_files",
            20,
            1..=1000,
            "a number of files per message from 1 to 1000",
        );
        let allowed_extensions = self.extensions(s);
        let storage_dir = match self.string(
            s,
            "storage_dir",
            "a folder path (relative to `state_dir`, else to this settings file)",
            false,
        ) {
            Err(()) => None,
            Ok(None) => Some(self.resolve_state("attachments")),
            Ok(Some((text, span))) if text.trim().is_empty() => {
                self.report(
                    Some(span),
                    s.key("storage_dir"),
                    "is empty",
                    "a folder path (relative to `state_dir`, else to this settings file)",
                );
                None
            }
            Ok(Some((text, _))) => Some(self.resolve_state_path(text.trim())),
        };
        let retention_days = self.int_in(
            s,
            "retention_days",
            365,
            0..=MAX_DAYS,
            "0 (keep files forever) or a number of days up to 36500",
        );
        Some(AttachmentSettings {
            enabled: enabled?,
            max_size_mb: max_size_mb? as u64,
            allowed_extensions: allowed_extensions?,
            max_files: max_files? as u32,
            storage_dir: storage_dir?,
            retention_days: retention_days? as u32,
        })
    }

    /// `"jpg, .PNG"` or `["jpg", ".png"]` → `["jpg", "png"]`.
    pub(super) fn extensions(&mut self, s: &Section<'_>) -> Checked<Vec<String>> {
        let accepted = "extensions separated by commas (`\"jpg,png,pdf\"`) or a list (`[\"jpg\", \"png\"]`), letters and digits only";
        let key = s.key("allowed_extensions");
        let Some(v) = s.get("allowed_extensions") else {
            return Some(DEFAULT_EXTENSIONS.iter().map(|e| e.to_string()).collect());
        };
        // (item, span of the value that holds it)
        let mut items: Vec<(String, Span)> = Vec::new();
        match v.get_ref() {
            DeValue::String(text) => {
                items.extend(text.split(',').map(|e| (e.to_string(), v.span())));
            }
            DeValue::Array(array) => {
                let mut ok = true;
                for item in array.iter() {
                    match item.get_ref() {
                        DeValue::String(text) => items.push((text.to_string(), item.span())),
                        _ => {
                            self.wrong_type(item, key.clone(), "a string", accepted, false);
                            ok = false;
                        }
                    }
                }
                if !ok {
                    return None;
                }
            }
            _ => {
                self.wrong_type(v, key, "a string or a list of strings", accepted, false);
                return None;
            }
        }
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for (raw, span) in items {
            let ext = raw
                .trim()
                .trim_start_matches('.')
                .trim()
                .to_ascii_lowercase();
            if ext.is_empty() {
                continue; // `"jpg,png,"`: a trailing comma is harmless
            }
            if !ext.chars().all(|c| c.is_ascii_alphanumeric()) || ext.len() > 16 {
                self.report(
                    Some(span),
                    key.clone(),
                    format!("`{}` is not a file extension", raw.trim()),
                    accepted,
                );
                ok = false;
                continue;
            }
            if !out.contains(&ext) {
                out.push(ext);
            }
        }
        if ok && out.is_empty() {
            self.report(
                Some(v.span()),
                key,
                "the list is empty: every file would be refused",
                "at least one extension, or `enabled = false` to refuse all files",
            );
            return None;
        }
        ok.then_some(out)
    }

    pub(super) fn antivirus(&mut self, s: &Section<'_>) -> Checked<AntivirusSettings> {
        self.known_keys(s, ANTIVIRUS_KEYS);
        let accepted = "`tcp://HOST:PORT` (e.g. `tcp://127.0.0.1:3310`) or `unix:/PATH` (e.g. `unix:/run/clamav/clamd.ctl`)";
        let clamd = self
            .required_string(s, "clamd", accepted)
            .and_then(|(text, span)| match parse_clamd(text) {
                Ok(ClamdAddress::Unix(path)) => {
                    Some(ClamdAddress::Unix(clean(&self.base_dir.join(path))))
                }
                Ok(tcp) => Some(tcp),
                Err(message) => {
                    self.report(Some(span), s.key("clamd"), message, accepted);
                    None
                }
            });
        let timeout_seconds = self.int_in(
            s,
            "timeout_seconds",
            30,
            1..=3600,
            "a number of seconds from 1 to 3600",
        );
        Some(AntivirusSettings {
            clamd: clamd?,
            timeout_seconds: timeout_seconds? as u64,
        })
    }
}
