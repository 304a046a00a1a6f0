//! Agent command lines at the top of a reply (`#close`, `#priority high`, …).
//!
//! The block is the run of leading lines that start with `#` and a word;
//! blank lines inside it are skipped, and the first other line ends it. A
//! misspelt command or a bad argument is reported to the agent and never
//! relayed as text, so a typo cannot leak `#clsoe` to the customer. A `#`
//! followed by a digit (`#123 is the order number`), a space (`# Title`) or
//! other punctuation is ordinary text.

use crate::domain::Priority;

/// One command an agent gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Close,
    Resolve,
    Reopen,
    Priority(Priority),
    /// Escalation to the named department, as written (trimmed).
    Department(String),
    /// The whole message is an internal note: it is not relayed.
    Note,
}

/// The commands at the top of a reply, and what follows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandBlock {
    /// In the order written; repeated or contradictory commands are kept as
    /// given for the caller to judge.
    pub commands: Vec<Command>,
    /// The reply after the command block, leading blank lines removed.
    pub rest: String,
    /// One message per refused command line, naming what is accepted.
    pub errors: Vec<String>,
}

const ACCEPTED: &str =
    "#close, #resolve, #reopen, #priority low|normal|high|urgent, #department NAME, #note";

/// Reads the command block at the top of `text` (an agent's visible reply).
pub fn parse_commands(text: &str) -> CommandBlock {
    let mut block = CommandBlock::default();
    let mut rest_start = text.len();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            offset += raw.len();
            continue;
        }
        match read_command_line(trimmed) {
            Some(Ok(command)) => block.commands.push(command),
            Some(Err(error)) => block.errors.push(error),
            None => {
                rest_start = offset;
                break;
            }
        }
        offset += raw.len();
    }
    block.rest = text[rest_start..].to_string();
    block
}

/// `None` when the line is text, not a command line.
fn read_command_line(line: &str) -> Option<Result<Command, String>> {
    let after_hash = line.strip_prefix('#')?;
    if !after_hash.chars().next().is_some_and(char::is_alphabetic) {
        return None;
    }
    let (word, argument) = match after_hash.find(char::is_whitespace) {
        Some(i) => (&after_hash[..i], after_hash[i..].trim()),
        None => (after_hash, ""),
    };
    let name = word.to_lowercase();
    let no_argument = |command: Command| {
        if argument.is_empty() {
            Ok(command)
        } else {
            Err(format!(
                "`#{name}` takes no argument (got `{argument}`); write it alone on its line"
            ))
        }
    };
    Some(match name.as_str() {
        "close" => no_argument(Command::Close),
        "resolve" => no_argument(Command::Resolve),
        "reopen" => no_argument(Command::Reopen),
        "note" => no_argument(Command::Note),
        "priority" => argument
            .parse::<Priority>()
            .map(Command::Priority)
            .map_err(|_| {
                if argument.is_empty() {
                    "`#priority` needs a level: low, normal, high or urgent".to_string()
                } else {
                    format!(
                        "`#priority {argument}` is not a priority: accepted are low, normal, high, urgent"
                    )
                }
            }),
        "department" if argument.is_empty() => {
            Err("`#department` needs a department name, e.g. `#department billing`".to_string())
        }
        "department" => Ok(Command::Department(argument.to_string())),
        _ => Err(format!(
            "`#{word}` is not a command; accepted commands are {ACCEPTED}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(name: &str) -> Command {
        Command::Department(name.to_string())
    }

    #[test]
    fn command_blocks_are_read_from_the_top() {
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
            (
                "#priority high\nOn it.",
                &[Priority(crate::domain::Priority::High)],
                "On it.",
                0,
            ),
            (
                "#Priority URGENT",
                &[Priority(crate::domain::Priority::Urgent)],
                "",
                0,
            ),
            (
                "#priority low\n#priority normal",
                &[
                    Priority(crate::domain::Priority::Low),
                    Priority(crate::domain::Priority::Normal),
                ],
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
                &[Close, Priority(crate::domain::Priority::Low)],
                "Bye",
                0,
            ),
            // The block ends at the first text line: later `#` lines are text.
            ("Hi\n#close", &[], "Hi\n#close", 0),
            ("#close\nHi\n#reopen", &[Close], "Hi\n#reopen", 0),
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
    fn error_messages_say_what_is_accepted() {
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
            ("#priority", &["low, normal, high or urgent"]),
            ("#department", &["department name"]),
            ("#note private stuff", &["#note", "takes no argument"]),
        ];
        for (input, needles) in cases {
            let block = parse_commands(input);
            assert_eq!(block.errors.len(), 1, "errors of {input:?}");
            for needle in *needles {
                assert!(
                    block.errors[0].contains(needle),
                    "error for {input:?} lacks {needle:?}: {}",
                    block.errors[0]
                );
            }
        }
    }
}
