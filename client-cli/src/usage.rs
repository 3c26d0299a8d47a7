//! French help and usage errors: clap writes its own headings and parse errors in English, so
//! the help template, the help and version flags and the common parse errors are redone here.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, CommandFactory};

use crate::{Cli, Exit};

const HELP_TEMPLATE: &str = "{about-with-newline}\nUtilisation : {usage}\n\n{all-args}{after-help}";

const EXIT_CODES: &str =
    "Codes de sortie : 0 succès ; 1 erreur d'exécution ; 2 commande ou données \
invalides (rien n'a été modifié) ; 3 réplica utilisé par un autre processus ; 4 relais ou \
poste injoignable, ou synchronisation interrompue (réessayez plus tard) ; 5 accès refusé par le \
relais ou le poste (jeton, inscription, révocation, empreinte).";

/// Parses the command line with French help; errors are rendered by [`usage_exit`].
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<ArgMatches, clap::Error> {
    command().try_get_matches_from(args)
}

/// The clap command of `atelier`, with French headings, help and version flags.
pub fn command() -> clap::Command {
    let root = Cli::command()
        .disable_version_flag(true)
        .arg(
            Arg::new("version")
                .long("version")
                .short('V')
                .action(ArgAction::Version)
                .display_order(1000)
                .help("Affiche la version"),
        )
        .after_help(EXIT_CODES);
    frenchify(root)
}

fn frenchify(cmd: clap::Command) -> clap::Command {
    cmd.help_template(HELP_TEMPLATE)
        .disable_help_flag(true)
        .disable_help_subcommand(true)
        .subcommand_help_heading("Commandes")
        .subcommand_value_name("COMMANDE")
        .arg(
            Arg::new("help")
                .long("help")
                .short('h')
                .action(ArgAction::Help)
                .display_order(1000)
                .help("Affiche l'aide"),
        )
        .mut_args(|arg| {
            // "[possible values: …]" would be English: list them in French in the help text.
            if !arg.get_action().takes_values() {
                return arg.hide_env(true);
            }
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            if values.len() < 2 {
                return arg.hide_env(true);
            }
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.hide_possible_values(true)
                .hide_env(true)
                .help(format!("{help} [valeurs : {}]", values.join(", ")))
        })
        .mut_subcommands(frenchify)
}

/// Prints a parse error (or the help or version asked for) and gives the exit code: 0 for help
/// and version, 2 for a command-line mistake.
pub fn usage_exit(err: clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return ExitCode::from(Exit::Usage as u8);
        }
        _ => {}
    }
    eprintln!("{}", french_message(&err));
    ExitCode::from(Exit::Usage as u8)
}

/// The French rendering of a command-line error.
pub fn french_message(err: &clap::Error) -> String {
    let s = |k| match err.get(k) {
        Some(ContextValue::String(v)) => Some(v.clone()),
        _ => None,
    };
    let list = |k| match err.get(k) {
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    };
    let arg = s(ContextKind::InvalidArg).unwrap_or_default();
    let mut msg = match err.kind() {
        ErrorKind::InvalidValue => match s(ContextKind::InvalidValue) {
            Some(v) if v.is_empty() => format!("une valeur est attendue après « {arg} »"),
            Some(v) => {
                let valid = list(ContextKind::ValidValue);
                let mut m = format!("valeur « {v} » invalide pour « {arg} »");
                if !valid.is_empty() {
                    m.push_str(&format!("\n  valeurs possibles : {}", valid.join(", ")));
                }
                m
            }
            None => english(err),
        },
        ErrorKind::ValueValidation => {
            let v = s(ContextKind::InvalidValue).unwrap_or_default();
            let why = std::error::Error::source(err)
                .map(|e| format!(" : {e}"))
                .unwrap_or_default();
            format!("valeur « {v} » invalide pour « {arg} »{why}")
        }
        ErrorKind::UnknownArgument => format!("argument inattendu « {arg} »"),
        ErrorKind::InvalidSubcommand => format!(
            "commande inconnue « {} »",
            s(ContextKind::InvalidSubcommand).unwrap_or_default()
        ),
        ErrorKind::MissingRequiredArgument => format!(
            "argument(s) obligatoire(s) manquant(s) : {}",
            list(ContextKind::InvalidArg).join(", ")
        ),
        ErrorKind::MissingSubcommand => "une commande est attendue".to_string(),
        ErrorKind::ArgumentConflict => match s(ContextKind::PriorArg) {
            Some(prior) if prior == arg => format!("« {arg} » ne peut être donné qu'une fois"),
            Some(prior) => format!("« {arg} » ne peut pas être utilisé avec « {prior} »"),
            None => format!("« {arg} » ne peut pas être utilisé avec les autres arguments"),
        },
        ErrorKind::TooManyValues | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            format!("nombre de valeurs incorrect pour « {arg} »")
        }
        _ => english(err),
    };
    for key in [ContextKind::SuggestedArg, ContextKind::SuggestedSubcommand] {
        let suggested = match err.get(key) {
            Some(ContextValue::String(v)) => vec![v.clone()],
            Some(ContextValue::Strings(v)) => v.clone(),
            _ => Vec::new(),
        };
        if !suggested.is_empty() {
            msg.push_str(&format!(
                "\n  vouliez-vous dire « {} » ?",
                suggested.join(" », « ")
            ));
        }
    }
    let usage = match err.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(u)) => {
            let u = u.to_string();
            let u = u.trim().trim_start_matches("Usage:").trim().to_string();
            format!("\n\nUtilisation : {u}")
        }
        _ => String::new(),
    };
    format!("erreur : {msg}{usage}\n\nPour en savoir plus : --help")
}

/// Clap's own message, for the rare errors not translated above.
fn english(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.trim_start_matches("error:").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn parse_errors_are_french_with_the_usage() {
        let err =
            parse_args(["atelier", "list", "--kind", "maison"].map(OsString::from)).unwrap_err();
        let msg = french_message(&err);
        assert!(
            msg.starts_with("erreur : valeur « maison » invalide pour « --kind"),
            "{msg}"
        );
        assert!(
            msg.contains("valeurs possibles : realisation, outil"),
            "{msg}"
        );
        let err = parse_args(["atelier", "lst"].map(OsString::from)).unwrap_err();
        let msg = french_message(&err);
        assert!(msg.contains("commande inconnue « lst »"), "{msg}");
        assert!(msg.contains("vouliez-vous dire « list »"), "{msg}");
        assert!(msg.contains("Utilisation : atelier"), "{msg}");
        let err = parse_args(["atelier", "add", "--title", "x"].map(OsString::from)).unwrap_err();
        assert!(french_message(&err).contains("obligatoire(s) manquant(s) : --kind"));
    }
}
