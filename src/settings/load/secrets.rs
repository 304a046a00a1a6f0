//! Secrets (`X`, `X_env`, `X_file`): exactly one of the three, read once
//! here, from the settings, the environment or a file (a systemd
//! credential when `$CREDENTIALS_DIRECTORY` names one). Their values never
//! appear in a [`Problem`](super::Problem).

use super::*;

/// A secret read from `X`, `X_env` or `X_file`.
pub(super) struct ReadSecret {
    pub(super) value: Secret,
    pub(super) source: SecretSource,
    pub(super) span: Span,
}

impl Checker<'_> {
    /// The file a `*_file` secret names: `$CREDENTIALS_DIRECTORY/NAME` is
    /// the credential systemd's `LoadCredential=NAME:…` gives the service
    /// (the directory is known only when the service starts); any other
    /// path is relative to the settings file, and read from the
    /// credentials directory when one of that file name is there.
    fn credential_path(&self, written: &str) -> Result<PathBuf, String> {
        let name = ["$CREDENTIALS_DIRECTORY/", "${CREDENTIALS_DIRECTORY}/"]
            .iter()
            .find_map(|p| written.strip_prefix(p));
        let Some(name) = name else {
            // under systemd, `LoadCredential=NAME:PATH` hands the service
            // the file PATH names as `$CREDENTIALS_DIRECTORY/NAME`: a
            // credential with this file's name is read instead of the file
            // (which the service's user may not be allowed to read)
            let path = self.resolve(written);
            if let (Ok(dir), Some(file)) = ((self.env)("CREDENTIALS_DIRECTORY"), path.file_name())
                && !dir.is_empty()
            {
                let credential = Path::new(&dir).join(file);
                if credential.is_file() {
                    return Ok(credential);
                }
            }
            return Ok(path);
        };
        if name.is_empty() || name.contains('/') {
            return Err(format!("`{written}` does not name one credential"));
        }
        match (self.env)("CREDENTIALS_DIRECTORY") {
            Ok(dir) if !dir.is_empty() => Ok(Path::new(&dir).join(name)),
            _ => Err(format!(
                "`{written}`: CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with `LoadCredential=`; elsewhere, give the file's path)"
            )),
        }
    }

    /// Exactly one of `X`, `X_env`, `X_file`. `Ok(None)` when none is given.
    pub(super) fn secret(&mut self, s: &Section<'_>, base: &str) -> Result<Option<ReadSecret>, ()> {
        let names = [
            base.to_string(),
            format!("{base}_env"),
            format!("{base}_file"),
        ];
        let accepted = format!(
            "exactly one of `{base} = \"…\"`, `{base}_env = \"VARIABLE\"` or `{base}_file = \"PATH\"`"
        );
        let given: Vec<(usize, &Spanned<DeValue<'_>>)> = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| s.get(n).map(|v| (i, v)))
            .collect();
        let (which, v) = match given.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            [first, rest @ ..] => {
                for (i, v) in rest {
                    self.report(
                        Some(v.span()),
                        s.key(&names[*i]),
                        format!("`{}` is given too", names[first.0]),
                        &accepted,
                    );
                }
                return Err(());
            }
        };
        let key = s.key(&names[which]);
        let DeValue::String(text) = v.get_ref() else {
            self.wrong_type(v, key, "a string", &accepted, true);
            return Err(());
        };
        let span = v.span();
        let (value, source) = match which {
            0 => (text.to_string(), SecretSource::Literal),
            1 => {
                let var = text.trim();
                if var.is_empty() || var.contains(['=', '\0']) || var.contains(char::is_whitespace)
                {
                    self.report(
                        Some(span),
                        key,
                        format!("`{var}` is not an environment variable name"),
                        "a variable name such as `GUICHET_SECRET`",
                    );
                    return Err(());
                }
                match (self.env)(var) {
                    Ok(value) if !value.is_empty() || !self.secrets_optional => {
                        (value, SecretSource::Env(var.to_string()))
                    }
                    _ if self.secrets_optional => {
                        (unusable_secret(), SecretSource::Env(var.to_string()))
                    }
                    Err(VarError::NotPresent) | Ok(_) => {
                        self.report(
                            Some(span),
                            key,
                            format!("environment variable {var} is not set"),
                            format!("{var} set in the daemon's environment, or `{base}_file`"),
                        );
                        return Err(());
                    }
                    Err(VarError::NotUnicode(_)) => {
                        self.report(
                            Some(span),
                            key,
                            format!("environment variable {var} is not valid UTF-8"),
                            format!("{var} holding UTF-8 text"),
                        );
                        return Err(());
                    }
                }
            }
            _ => {
                let written = text.trim();
                let path = match self.credential_path(written) {
                    Ok(path) => path,
                    Err(_) if self.secrets_optional => {
                        return Ok(Some(ReadSecret {
                            value: Secret::new(unusable_secret()),
                            source: SecretSource::File(self.resolve(written)),
                            span,
                        }));
                    }
                    Err(message) => {
                        self.report(
                            Some(span),
                            key,
                            message,
                            "`$CREDENTIALS_DIRECTORY/NAME` under a systemd unit with `LoadCredential=NAME:PATH`, or a path",
                        );
                        return Err(());
                    }
                };
                match std::fs::read_to_string(&path) {
                    Ok(content) if !content.is_empty() || !self.secrets_optional => (
                        content.trim_end_matches(['\n', '\r']).to_string(),
                        SecretSource::File(path),
                    ),
                    _ if self.secrets_optional => (unusable_secret(), SecretSource::File(path)),
                    Ok(_) => unreachable!("an empty file is read when secrets are required"),
                    Err(e) => {
                        self.report(
                            Some(span),
                            key,
                            format!("cannot read `{written}` ({}): {e}", path.display()),
                            "a readable UTF-8 file holding the secret (paths are relative to this settings file)",
                        );
                        return Err(());
                    }
                }
            }
        };
        if value.is_empty() {
            let message = match &source {
                SecretSource::Literal => "is empty".to_string(),
                SecretSource::Env(var) => format!("environment variable {var} is empty"),
                SecretSource::File(_) => format!("file `{}` is empty", text.trim()),
            };
            self.report(Some(span), key, message, &accepted);
            return Err(());
        }
        Ok(Some(ReadSecret {
            value: Secret::new(value),
            source,
            span,
        }))
    }
}

/// The key a secret was given under: `X`, `X_env` or `X_file`.
pub(super) fn secret_key(base: &str, source: &SecretSource) -> String {
    match source {
        SecretSource::Literal => base.to_string(),
        SecretSource::Env(_) => format!("{base}_env"),
        SecretSource::File(_) => format!("{base}_file"),
    }
}

/// The stand-in for a secret [`load_without_secrets`](super::load_without_secrets) did not read: random,
/// so that it verifies, decrypts and logs in to nothing.
fn unusable_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}
