//! docs/CONFIG.md is generated from the CLI itself (every subcommand, flag, environment
//! variable and default), and this test fails when the file and the code disagree, so the
//! reference cannot go stale. Regenerate it with:
//!
//! ```sh
//! DTWIN_UPDATE_DOCS=1 cargo test -p dtwin --test cli config_reference
//! ```

use clap::CommandFactory;
use dtwin::cli::Cli;
use std::fmt::Write;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md");

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn render() -> String {
    let cli = Cli::command();
    let mut out = String::new();
    out.push_str(
        "# Configuration reference\n\n\
         Generated from the CLI by `services/dtwin/tests/cli/config_reference.rs`; do not edit by hand\n\
         (`DTWIN_UPDATE_DOCS=1 cargo test -p dtwin --test cli config_reference` rewrites it).\n\n\
         Every flag has an environment variable; a flag on the command line wins over the\n\
         variable, the variable over the default. docker-compose.yml and deploy/k8s use the\n\
         variables, and tests check them against this CLI. Configuration files (expert rules,\n\
         alert routing) are described where they live: `services/inference/rules/default.toml`\n\
         and docs/alerts.md.\n\n",
    );
    let globals: Vec<_> = cli
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .collect();
    out.push_str("## Global flags (every command)\n\n");
    table(&mut out, globals.iter().copied());
    let mut subs: Vec<_> = cli.get_subcommands().collect();
    subs.sort_by_key(|s| s.get_name().to_owned());
    for sub in subs {
        let _ = writeln!(out, "## `dtwin {}`\n", sub.get_name());
        if let Some(about) = sub.get_about() {
            let _ = writeln!(out, "{about}\n");
        }
        let positionals: Vec<_> = sub.get_positionals().collect();
        for p in &positionals {
            let _ = writeln!(
                out,
                "- argument `{}`: {}",
                p.get_id(),
                cell(&p.get_help().map(|h| h.to_string()).unwrap_or_default())
            );
        }
        if !positionals.is_empty() {
            out.push('\n');
        }
        let args: Vec<_> = sub
            .get_arguments()
            .filter(|a| a.get_long().is_some() && !a.is_global_set())
            .filter(|a| a.get_id() != "help" && a.get_id() != "version")
            .collect();
        if args.is_empty() {
            out.push_str("No flags.\n\n");
        } else {
            table(&mut out, args.into_iter());
        }
    }
    out
}

fn table<'a>(out: &mut String, args: impl Iterator<Item = &'a clap::Arg>) {
    out.push_str("| flag | environment | default | meaning |\n|---|---|---|---|\n");
    for a in args {
        if a.get_id() == "help" || a.get_id() == "version" {
            continue;
        }
        let flag = format!("`--{}`", a.get_long().unwrap_or_default());
        let env = a
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let default = a
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", ");
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        let values = a
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect::<Vec<_>>();
        let help = if values.is_empty() || a.get_num_args().is_some_and(|n| n.max_values() == 0) {
            help
        } else {
            let sep = if help.ends_with('.') || help.is_empty() {
                ""
            } else {
                "."
            };
            format!("{help}{sep} One of: {}.", values.join(", "))
        };
        let _ = writeln!(
            out,
            "| {flag} | {env} | {} | {} |",
            cell(&default),
            cell(&help)
        );
    }
    out.push('\n');
}

/// The long-running services, deployed by docker-compose.yml and deploy/k8s: configured by
/// environment alone, so each of their flags needs a variable. (One-shot commands such as
/// `train` or `eda` take flags.)
const SERVICES: [&str; 7] = [
    "up",
    "broker",
    "twin",
    "feature",
    "inference",
    "alerter",
    "dashboard",
];

#[test]
fn every_service_flag_has_an_environment_variable() {
    let cli = Cli::command();
    let mut missing = Vec::new();
    for sub in cli
        .get_subcommands()
        .filter(|s| SERVICES.contains(&s.get_name()))
    {
        for a in sub.get_arguments() {
            let Some(long) = a.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            if a.get_env().is_none() {
                missing.push(format!("dtwin {} --{long}", sub.get_name()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "flags without an environment variable: {missing:?}"
    );
}

#[test]
fn config_reference_is_current() {
    let want = render();
    if std::env::var_os("DTWIN_UPDATE_DOCS").is_some() {
        std::fs::write(PATH, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        have == want,
        "docs/CONFIG.md is stale: run `DTWIN_UPDATE_DOCS=1 cargo test -p dtwin --test cli config_reference`"
    );
}
