//! Running a host command whose failure must say what failed and why.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs `cmd`; on failure the error names `what`, the exit status and the
/// last `tail` lines of stderr. Returns stdout.
pub fn run_checked(cmd: &mut Command, what: &str, tail: usize) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{what} failed ({}): {}",
            out.status,
            last_lines(&err, tail, " | ")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of `text`, joined with `sep`.
pub fn last_lines(text: &str, n: usize, sep: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        let cases = [("a\nb\nc\n", 2, "b | c"), ("a", 5, "a"), ("", 3, "")];
        for (text, n, want) in cases {
            assert_eq!(last_lines(text, n, " | "), want);
        }
    }

    #[test]
    fn failures_name_the_command_and_its_stderr() {
        let err = run_checked(
            Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"]),
            "the probe",
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("the probe failed (exit status: 3): two"),
            "{err}"
        );
        assert_eq!(
            run_checked(Command::new("echo").arg("hi"), "echo", 1).unwrap(),
            "hi\n"
        );
    }
}
