//! Agent command lines in a reply (`#close`, `#priority high`, …).
//!
//! At the top of a reply, every line that starts with `#` and a word is a
//! command line (blank lines inside the block are skipped; the first other
//! line ends it): a misspelt one (`#clsoe`) is reported to the agent and
//! never relayed as text. Further down, outside quoted text (`>` or `|`),
//! a line whose first word is a known command (`#close` typed as the last
//! line) is a command too, wherever it stands; other `#words` there are
//! text. A `#` followed by a digit (`#123 is the order number`), a space
//! (`# Title`) or punctuation is always text. Pure.

use crate::domain::{EmailAddress, Priority};
use crate::settings::Language;

/// One command an agent gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Close,
    Resolve,
    Reopen,
    Priority(Priority),
    /// Escalation to the named department, as written (trimmed).
    Department(String),
    /// `#note` alone: the whole message is an internal note.
    Note,
    /// `#note TEXT`: TEXT is an internal note; the rest of the reply is
    /// an answer like any other.
    NoteText(String),
    /// `#merge-customer ADDRESS`: ADDRESS is another address of this
    /// ticket's customer (one person, several addresses).
    MergeCustomer(EmailAddress),
}

/// A command line that could not be obeyed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// `#close now`: this command takes no argument.
    TakesNoArgument { name: String, argument: String },
    /// `#priority` alone.
    NeedsLevel,
    /// `#priority asap`.
    NotAPriority { argument: String },
    /// `#department` alone.
    NeedsDepartment,
    /// `#clsoe` at the top of a reply.
    Unknown { word: String },
    /// `#merge-customer` alone.
    NeedsAddress,
    /// `#merge-customer jane at home`.
    NotAnAddress { argument: String },
}

const ACCEPTED: &str = "#close, #resolve, #reopen, #priority low|normal|high|urgent, #department NAME, #note [TEXT], #merge-customer ADDRESS";

impl CommandError {
    /// One sentence for the agent, naming the line and what is accepted.
    pub fn explain(&self, lang: Language) -> String {
        let fr = lang == Language::Fr;
        match self {
            CommandError::TakesNoArgument { name, argument } if fr => format!(
                "`#{name}` ne prend pas d'argument (reçu `{argument}`) : écrivez-le seul sur sa ligne."
            ),
            CommandError::TakesNoArgument { name, argument } => format!(
                "`#{name}` takes no argument (got `{argument}`); write it alone on its line."
            ),
            CommandError::NeedsLevel if fr => {
                "`#priority` demande un niveau : low, normal, high ou urgent.".into()
            }
            CommandError::NeedsLevel => {
                "`#priority` needs a level: low, normal, high or urgent.".into()
            }
            CommandError::NotAPriority { argument } if fr => format!(
                "`#priority {argument}` n'est pas une priorité : les niveaux acceptés sont low, normal, high, urgent."
            ),
            CommandError::NotAPriority { argument } => format!(
                "`#priority {argument}` is not a priority: accepted are low, normal, high, urgent."
            ),
            CommandError::NeedsDepartment if fr => {
                "`#department` demande un nom de service, par exemple `#department facturation`."
                    .into()
            }
            CommandError::NeedsDepartment => {
                "`#department` needs a department name, e.g. `#department billing`.".into()
            }
            CommandError::Unknown { word } if fr => {
                format!("`#{word}` n'est pas une commande ; les commandes sont {ACCEPTED}.")
            }
            CommandError::Unknown { word } => {
                format!("`#{word}` is not a command; accepted commands are {ACCEPTED}.")
            }
            CommandError::NeedsAddress if fr => {
                "`#merge-customer` demande une adresse, par exemple `#merge-customer jane@home.example`.".into()
            }
            CommandError::NeedsAddress => {
                "`#merge-customer` needs an address, for example `#merge-customer jane@home.example`.".into()
            }
            CommandError::NotAnAddress { argument } if fr => format!(
                "`#merge-customer {argument}` : ce n'est pas une adresse e-mail."
            ),
            CommandError::NotAnAddress { argument } => {
                format!("`#merge-customer {argument}`: that is not an email address.")
            }
        }
    }
}

/// The commands of a reply, and the reply without them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandBlock {
    /// In the order written; repeated or contradictory commands are kept as
    /// given for the caller to judge.
    pub commands: Vec<Command>,
    /// The reply without its command lines, leading blank lines removed.
    pub rest: String,
    /// One per refused command line.
    pub errors: Vec<CommandError>,
}

const NAMES: &[&str] = &[
    "close",
    "resolve",
    "reopen",
    "priority",
    "department",
    "note",
    "merge-customer",
];

/// Reads the commands of `text` (an agent's visible reply).
pub fn parse_commands(text: &str) -> CommandBlock {
    let mut block = CommandBlock::default();
    let mut rest = String::with_capacity(text.len());
    let mut in_top_block = true;
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim();
        if in_top_block {
            if trimmed.is_empty() {
                continue;
            }
            match read_command_line(trimmed, true) {
                Some(Ok(command)) => {
                    block.commands.push(command);
                    continue;
                }
                Some(Err(error)) => {
                    block.errors.push(error);
                    continue;
                }
                None => in_top_block = false,
            }
        } else if !is_quoted(line) {
            match read_command_line(trimmed, false) {
                Some(Ok(command)) => {
                    block.commands.push(command);
                    continue;
                }
                Some(Err(error)) => {
                    block.errors.push(error);
                    continue;
                }
                None => {}
            }
        }
        rest.push_str(raw);
    }
    block.rest = rest;
    block
}

fn is_quoted(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('>') || t == "|" || t.starts_with("| ")
}

/// `None` when the line is text. `top`: at the top of the reply, where any
/// `#word` is a command line (so that a typo is reported, not relayed);
/// further down only the known command names are.
fn read_command_line(line: &str, top: bool) -> Option<Result<Command, CommandError>> {
    let after_hash = line.strip_prefix('#')?;
    if !after_hash.chars().next().is_some_and(char::is_alphabetic) {
        return None;
    }
    let (word, argument) = match after_hash.find(char::is_whitespace) {
        Some(i) => (&after_hash[..i], after_hash[i..].trim()),
        None => (after_hash, ""),
    };
    let name = word.to_lowercase();
    if !top && !NAMES.contains(&name.as_str()) {
        // `#clsoe` alone as the last line is a mistyped `#close`, not
        // words for the customer; `#hashtag trending` stays text
        let misspelt = argument.is_empty() && NAMES.iter().any(|n| near(&name, n));
        return misspelt.then(|| {
            Err(CommandError::Unknown {
                word: word.to_string(),
            })
        });
    }
    let no_argument = |command: Command| {
        if argument.is_empty() {
            Ok(command)
        } else {
            Err(CommandError::TakesNoArgument {
                name: name.clone(),
                argument: argument.to_string(),
            })
        }
    };
    Some(match name.as_str() {
        "close" => no_argument(Command::Close),
        "resolve" => no_argument(Command::Resolve),
        "reopen" => no_argument(Command::Reopen),
        "note" if argument.is_empty() => Ok(Command::Note),
        "note" => Ok(Command::NoteText(argument.to_string())),
        "priority" => argument
            .parse::<Priority>()
            .map(Command::Priority)
            .map_err(|_| {
                if argument.is_empty() {
                    CommandError::NeedsLevel
                } else {
                    CommandError::NotAPriority {
                        argument: argument.to_string(),
                    }
                }
            }),
        "department" if argument.is_empty() => Err(CommandError::NeedsDepartment),
        "department" => Ok(Command::Department(argument.to_string())),
        "merge-customer" if argument.is_empty() => Err(CommandError::NeedsAddress),
        "merge-customer" => EmailAddress::parse(argument.trim_matches(['<', '>']))
            .map(Command::MergeCustomer)
            .map_err(|_| CommandError::NotAnAddress {
                argument: argument.to_string(),
            }),
        _ => Err(CommandError::Unknown {
            word: word.to_string(),
        }),
    })
}

/// Within two letters' edits of a command name (and not shorter than
/// four letters, so that `#no` or `#re` are not taken for one).
fn near(word: &str, name: &str) -> bool {
    if word.chars().count() < 4 {
        return false;
    }
    let (a, b): (Vec<char>, Vec<char>) = (word.chars().collect(), name.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()] <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(name: &str) -> Command {
        Command::Department(name.to_string())
    }

    #[test]
    fn command_lines_are_read_at_the_top_and_wherever_they_stand() {
        use crate::domain::Priority as P;
        use Command::*;
        // (input, commands, rest, number of errors)
        let cases: &[(&str, &[Command], &str, usize)] = &[
            ("", &[], "", 0),
            ("Hello", &[], "Hello", 0),
            ("#close", &[Close], "", 0),
            ("#close\nThanks, done.", &[Close], "Thanks, done.", 0),
            ("#CLOSE\r\n\r\nDone.\r\n", &[Close], "Done.\r\n", 0),
            ("\n\n  #resolve  \n\nFixed.", &[Resolve], "Fixed.", 0),
            (
                "#reopen\nLet's look again.",
                &[Reopen],
                "Let's look again.",
                0,
            ),
            ("#note\nCalled them.", &[Note], "Called them.", 0),
            ("#priority high\nOn it.", &[Priority(P::High)], "On it.", 0),
            ("#Priority URGENT", &[Priority(P::Urgent)], "", 0),
            (
                "#priority low\n#priority normal",
                &[Priority(P::Low), Priority(P::Normal)],
                "",
                0,
            ),
            (
                "#department  Billing EU \nMoving this.",
                &[dept("Billing EU")],
                "Moving this.",
                0,
            ),
            (
                "#close\n\n#priority low\n\n\nBye",
                &[Close, Priority(P::Low)],
                "Bye",
                0,
            ),
            // issue 12: a known command further down is a command too
            ("Hi\n#close", &[Close], "Hi\n", 0),
            ("#close\nHi\n#reopen", &[Close, Reopen], "Hi\n", 0),
            (
                "Thanks!\n\n#priority high\nMore text",
                &[Priority(P::High)],
                "Thanks!\n\nMore text",
                0,
            ),
            // ... but not in quoted text, and an unknown #word there is text
            ("Hi\n> #close\n", &[], "Hi\n> #close\n", 0),
            ("Hi\n| #close", &[], "Hi\n| #close", 0),
            ("Hi\n#hashtag trending", &[], "Hi\n#hashtag trending", 0),
            // issue 12: `#priority` and `#note TEXT` together, both kept
            (
                "#priority high\n#note internal only\nOn it.",
                &[Priority(P::High), NoteText("internal only".into())],
                "On it.",
                0,
            ),
            // `#` + digit, space or punctuation is text.
            (
                "#123 is the order number",
                &[],
                "#123 is the order number",
                0,
            ),
            (
                "#close\n#123 is the order number",
                &[Close],
                "#123 is the order number",
                0,
            ),
            ("# Heading", &[], "# Heading", 0),
            ("#", &[], "#", 0),
            ("#!bang", &[], "#!bang", 0),
            // Errors: reported, not treated as text, the block goes on.
            ("#clsoe\nDone.", &[], "Done.", 1),
            ("#priority asap\nDone.", &[], "Done.", 1),
            ("#priority\nDone.", &[], "Done.", 1),
            ("#department\nDone.", &[], "Done.", 1),
            ("#department   \nDone.", &[], "Done.", 1),
            ("#close now\nDone.", &[], "Done.", 1),
            ("#clsoe\n#close\n#priority asap\nok", &[Close], "ok", 2),
            ("#fermer", &[], "", 1),
            ("Done.\n#priority asap", &[], "Done.\n", 1),
            // a mistyped command typed last is reported, not relayed
            (
                "Noted, I will check.\n#clsoe",
                &[],
                "Noted, I will check.\n",
                1,
            ),
            ("Noted.\n#resovle\n", &[], "Noted.\n", 1),
            ("See\n#monday", &[], "See\n#monday", 0),
        ];
        for (input, commands, rest, errors) in cases {
            let block = parse_commands(input);
            assert_eq!(&block.commands, commands, "commands of {input:?}");
            assert_eq!(block.rest, *rest, "rest of {input:?}");
            assert_eq!(
                block.errors.len(),
                *errors,
                "errors of {input:?}: {:?}",
                block.errors
            );
        }
    }

    #[test]
    fn error_messages_say_what_is_accepted_in_both_languages() {
        let cases: &[(&str, &[&str])] = &[
            (
                "#clsoe",
                &[
                    "#clsoe",
                    "#close",
                    "#priority low|normal|high|urgent",
                    "#department NAME",
                ],
            ),
            ("#priority asap", &["asap", "low, normal, high, urgent"]),
            ("#priority", &["low, normal, high", "urgent"]),
            ("#department", &["#department"]),
            ("#close now", &["#close", "now"]),
        ];
        for (input, needles) in cases {
            let block = parse_commands(input);
            assert_eq!(block.errors.len(), 1, "errors of {input:?}");
            let (en, fr) = (
                block.errors[0].explain(Language::En),
                block.errors[0].explain(Language::Fr),
            );
            assert_ne!(en, fr);
            for needle in *needles {
                assert!(en.contains(needle), "{input:?}: {en} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn merge_customer_takes_one_address() {
        let b = parse_commands("#merge-customer <Jane@Home.test>\nHi");
        assert_eq!(
            b.commands,
            [Command::MergeCustomer(
                EmailAddress::parse("jane@home.test").unwrap()
            )]
        );
        assert_eq!(b.rest, "Hi");
        assert_eq!(
            parse_commands("#merge-customer").errors,
            [CommandError::NeedsAddress]
        );
        assert!(matches!(
            parse_commands("#merge-customer jane at home").errors[..],
            [CommandError::NotAnAddress { .. }]
        ));
        // further down, too, like the other commands
        let b = parse_commands("Thanks.\n#merge-customer jane@home.test\n");
        assert_eq!(b.commands.len(), 1);
    }
}
