//! Running `ip`, `bridge`, `sysctl`, `nft` and friends, inside a namespace or not.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::error::{LabError, Result};

fn render(args: &[&str]) -> String {
    args.join(" ")
}

/// Run `args[0] args[1..]`, fail with its stderr if it exits non-zero.
pub fn run(args: &[&str]) -> Result<Output> {
    run_stdin(args, None)
}

/// Like [`run`], feeding `stdin` to the command.
pub fn run_stdin(args: &[&str], stdin: Option<&str>) -> Result<Output> {
    let (prog, rest) = args.split_first().ok_or_else(|| LabError::Spawn {
        cmd: String::new(),
        source: std::io::Error::other("empty command"),
    })?;
    tracing::trace!(cmd = %render(args), "run");
    let mut c = Command::new(prog);
    c.args(rest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().map_err(|source| LabError::Spawn {
        cmd: render(args),
        source,
    })?;
    if let Some(text) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(text.as_bytes())
            .map_err(|e| LabError::io(format!("writing stdin of `{}`", render(args)), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LabError::io(format!("waiting for `{}`", render(args)), e))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            cmd: render(args),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Run a command inside network namespace `netns` (`ip netns exec`).
pub fn run_in(netns: &str, args: &[&str]) -> Result<Output> {
    let mut full = vec!["ip", "netns", "exec", netns];
    full.extend_from_slice(args);
    run(&full)
}

/// Stdout of a command as a string.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
