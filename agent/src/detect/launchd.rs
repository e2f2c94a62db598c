//! AI credentials a macOS LaunchAgent puts into every login session's environment:
//! `ProgramArguments` running `launchctl setenv NAME VALUE` (directly, or in an `sh -c`
//! script), and an `EnvironmentVariables` dictionary handed to the agent's own program
//! (launchd.plist(5), launchctl(1)). XML and binary plists are both read.

use std::path::Path;

use super::history::split_commands;
use super::redact::split_command;
use super::tokens::Site;
use super::{Ctx, Home, TokenSource, expand};

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home) {
    for pattern in ctx.catalog.env_files.launch_agents.clone() {
        for rel in expand(ctx, &home.tree, &pattern) {
            agent(ctx, home, &rel);
        }
    }
}

fn agent(ctx: &mut Ctx<'_>, home: &Home, rel: &Path) {
    let bytes = match home.tree.read(rel, ctx.limits.small_file) {
        Ok(b) => b,
        Err(e) => return ctx.read_error(&home.tree, rel, e),
    };
    let dict = match crate::plist_bounded::from_bytes(&bytes) {
        Ok(plist::Value::Dictionary(dict)) => dict,
        Ok(_) => return ctx.error(&home.tree, rel, "malformed LaunchAgent plist: not a dictionary"),
        Err(e) => return ctx.error(&home.tree, rel, format!("malformed LaunchAgent plist: {e}")),
    };
    // Login-session environment, set at start-up like a shell rc file's exports.
    let site = Site { home, rel, source: TokenSource::ShellRc };
    if let Some(env) = dict.get("EnvironmentVariables").and_then(plist::Value::as_dictionary) {
        for (name, value) in env {
            if let Some(value) = value.as_string() {
                ctx.named_value(&site, name, value, format!("/EnvironmentVariables/{name}"));
            }
        }
    }
    let args: Vec<String> = dict
        .get("ProgramArguments")
        .and_then(plist::Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_string().map(str::to_owned)).collect())
        .unwrap_or_default();
    for (name, value) in setenv_pairs(&args) {
        ctx.named_value(&site, &name, &value, format!("launchctl setenv {name}"));
    }
}

/// The NAME VALUE pairs `launchctl setenv` is given, by argv or inside a `-c` script.
fn setenv_pairs(args: &[String]) -> Vec<(String, String)> {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    let mut out = Vec::new();
    let mut direct = |words: &[String]| {
        if let [prog, verb, rest @ ..] = words
            && base(prog) == "launchctl"
            && verb == "setenv"
        {
            out.extend(rest.chunks_exact(2).map(|kv| (kv[0].clone(), kv[1].clone())));
        }
    };
    direct(args);
    if let [shell, flag, script, ..] = args
        && matches!(base(shell).as_str(), "sh" | "bash" | "zsh" | "dash" | "ksh")
        && flag.starts_with('-')
        && flag.contains('c')
    {
        for cmd in split_commands(script) {
            direct(&split_command(cmd));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn setenv_by_argv_and_by_script() {
        let pair = |k: &str, x: &str| (k.to_owned(), x.to_owned());
        assert_eq!(
            setenv_pairs(&v(&["/bin/launchctl", "setenv", "A", "1", "B", "2"])),
            vec![pair("A", "1"), pair("B", "2")]
        );
        assert_eq!(
            setenv_pairs(&v(&[
                "/bin/sh",
                "-c",
                "launchctl setenv A 'x y'; /bin/launchctl setenv B \"2\" && echo ok"
            ])),
            vec![pair("A", "x y"), pair("B", "2")]
        );
        assert!(setenv_pairs(&v(&["/bin/launchctl", "getenv", "A"])).is_empty());
        assert!(setenv_pairs(&v(&["/usr/bin/python3", "-c", "launchctl setenv A 1"])).is_empty());
        assert!(setenv_pairs(&v(&["launchctl", "setenv", "ODD"])).is_empty());
    }
}
