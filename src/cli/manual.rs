//! `guichet manual DIR`: the man pages (one per command, from the same
//! clap definitions as `--help`) and the shell completions (bash, zsh,
//! fish), as the `.deb` installs them.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, Failure};

pub fn write(dir: &Path) -> Result<(), Failure> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("cannot write the man pages in {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "guichet", &completions)
            .with_context(|| format!("cannot write the {shell} completions"))?;
    }
    // for everyone to read, as under /usr/share: not the 0600 the
    // process's umask (private, for customers' mail) gives its files
    readable_by_all(dir, 0o755)?;
    for d in [&man, &completions] {
        readable_by_all(d, 0o755)?;
        for entry in std::fs::read_dir(d)? {
            readable_by_all(&entry?.path(), 0o644)?;
        }
    }
    let pages = std::fs::read_dir(&man)?.count();
    println!(
        "{pages} man pages in {}, completions for bash, zsh and fish in {}",
        man.display(),
        completions.display()
    );
    Ok(())
}

fn readable_by_all(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot make {} readable", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        assert!(super::write(dir.path()).is_ok());
        let main = std::fs::read_to_string(dir.path().join("man/guichet.1")).unwrap();
        assert!(main.contains(".TH guichet 1"), "{main}");
        assert!(main.contains("outbox"), "every command listed");
        assert!(dir.path().join("man/guichet-outbox.1").is_file());
        assert!(dir.path().join("man/guichet-backup.1").is_file());
        for f in ["guichet.bash", "_guichet", "guichet.fish"] {
            let text = std::fs::read_to_string(dir.path().join("completions").join(f)).unwrap();
            assert!(text.contains("check-config"), "{f}");
        }
    }
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it is for.
    #[test]
    fn help_describes_every_flag() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("{path}: the command itself"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(
            missing.is_empty(),
            "without help text:\n{}",
            missing.join("\n")
        );
    }
}
