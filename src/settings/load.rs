//! Reading `guichet.toml`: TOML → checked [`Settings`], every problem at once.
//! (Placeholder signatures; the loader is being written.)

use std::fmt;
use std::path::{Path, PathBuf};

use super::Settings;

/// One thing wrong in a settings file, with where it is and what would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the whole file.
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `helpdesk.reopen_days` or `departments[1].address`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What is accepted instead.
    pub accepted: String,
}

/// All the problems of a settings file.
#[derive(Debug, Clone)]
pub struct SettingsError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(
                f,
                "{}:{}:{}: {}: {} (accepted: {})",
                p.file.display(),
                p.line,
                p.column,
                p.key,
                p.message,
                p.accepted
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

pub fn load(path: &Path) -> Result<Settings, SettingsError> {
    let _ = path;
    unimplemented!("settings loader")
}

pub fn load_str(text: &str, path: &Path) -> Result<Settings, SettingsError> {
    let _ = (text, path);
    unimplemented!("settings loader")
}

/// The resolved settings as TOML-like text, secrets masked (`check-config`).
pub fn render_masked(settings: &Settings) -> String {
    let _ = settings;
    unimplemented!("settings rendering")
}

/// Valid but risky choices (dangerous extensions allowed, …).
pub fn warnings(settings: &Settings) -> Vec<String> {
    let _ = settings;
    Vec::new()
}
