//! Running a host command whose failure must say what failed and why;
//! the commands themselves are built in [`commands`].

use std::process::Command;

pub mod commands;

use anyhow::{bail, Context, Result};

/// Runs `cmd`; on failure the error names `what`, the exit status and the
/// last `tail` lines of stderr. Returns stdout.
///
/// The command runs in a process group of its own, registered with
/// [`stop`]: a download, an extraction or a build still under way when the
/// run is cancelled, or when the harness exits or dies, is killed with it.
pub fn run_checked(cmd: &mut Command, what: &str, tail: usize) -> Result<String> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {what}"))?;
    let _group = stop::Group::register(child.id() as i32);
    let out = child
        .wait_with_output()
        .with_context(|| format!("running {what}"))?;
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

/// Stopping a run, however it ends. A signal (SIGINT, SIGTERM, SIGHUP)
/// cancels the run: [`cancelled`] says so to every stage, and every guest's
/// process group registered with [`Group::register`] is killed at once,
/// from the signal handler itself (lock-free slots, async-signal-safe). A
/// guard process (`harness __guard`) is told each group too, and kills the
/// ones still alive if the harness itself dies (SIGKILL included).
pub mod stop {
    use std::io::Write;
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::Mutex;

    const SLOTS: usize = 256;
    static GROUPS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
    static CANCEL: AtomicI32 = AtomicI32::new(0);
    static GUARD: Mutex<Option<Box<dyn Write + Send>>> = Mutex::new(None);

    /// The signal that cancelled the run, if one did.
    pub fn cancelled() -> Option<i32> {
        match CANCEL.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }

    /// Cancels the run (the first signal wins) and kills every registered
    /// group. Async-signal-safe. Returns whether it was already cancelled.
    pub fn cancel(sig: i32) -> bool {
        let before = CANCEL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        kill_all();
        before.is_err()
    }

    /// SIGKILL to every registered process group. Async-signal-safe.
    pub fn kill_all() {
        for slot in &GROUPS {
            let pgid = slot.load(Ordering::SeqCst);
            if pgid > 0 {
                // SAFETY: kill(2) is async-signal-safe; a stale group is ESRCH.
                unsafe {
                    nix::libc::kill(-pgid, nix::libc::SIGKILL);
                }
            }
        }
    }

    /// Where to tell the guard process about each group (lines `+PGID`,
    /// `-PGID`; `done` at a clean end).
    pub fn set_guard(sink: Box<dyn Write + Send>) {
        if let Ok(mut g) = GUARD.lock() {
            *g = Some(sink);
        }
    }

    fn tell_guard(line: &str) {
        if let Ok(mut g) = GUARD.lock() {
            if let Some(w) = g.as_mut() {
                let _ = writeln!(w, "{line}").and_then(|()| w.flush());
            }
        }
    }

    /// The clean end of a run: the guard exits without killing anything.
    pub fn release_guard() {
        tell_guard("done");
        if let Ok(mut g) = GUARD.lock() {
            *g = None;
        }
    }

    /// A live process group of the run; unregistered when dropped.
    #[derive(Debug)]
    pub struct Group {
        slot: Option<usize>,
        pgid: i32,
    }

    impl Group {
        /// Registers `pgid`; if the run is already cancelled the group is
        /// killed at once.
        pub fn register(pgid: i32) -> Group {
            let slot = GROUPS.iter().position(|s| {
                s.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            });
            tell_guard(&format!("+{pgid}"));
            if cancelled().is_some() {
                // SAFETY: as in kill_all.
                unsafe {
                    nix::libc::kill(-pgid, nix::libc::SIGKILL);
                }
            }
            Group { slot, pgid }
        }
    }

    impl Drop for Group {
        fn drop(&mut self) {
            if let Some(i) = self.slot {
                GROUPS[i].store(0, Ordering::SeqCst);
            }
            tell_guard(&format!("-{}", self.pgid));
        }
    }

    /// What a guard does with one line of its input (pure): the groups
    /// still to kill if its parent dies.
    pub fn guard_line(live: &mut Vec<i32>, line: &str) -> GuardStep {
        let line = line.trim();
        if line == "done" {
            return GuardStep::Done;
        }
        if let Some(p) = line.strip_prefix('+').and_then(|p| p.parse().ok()) {
            live.push(p);
        } else if let Some(p) = line.strip_prefix('-').and_then(|p| p.parse::<i32>().ok()) {
            live.retain(|&g| g != p);
        }
        GuardStep::Go
    }

    /// Whether the guard reads on.
    #[derive(Debug, PartialEq, Eq)]
    pub enum GuardStep {
        Go,
        Done,
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "run_checked's own tests: plain commands whose output they know"
)]
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

    #[test]
    fn a_command_runs_in_a_group_of_its_own() {
        // Field 5 of /proc/PID/stat is the process group (sh's comm has
        // no space).
        let out = run_checked(
            Command::new("sh").args(["-c", "echo $$; cut -d' ' -f5 /proc/$$/stat"]),
            "sh",
            1,
        )
        .unwrap();
        let ids: Vec<&str> = out.lines().collect();
        assert_eq!(ids.len(), 2, "{out}");
        assert_eq!(ids[0], ids[1], "pid and process group differ: {out}");
        assert_ne!(
            ids[1],
            nix::unistd::getpgrp().to_string(),
            "the test's own group"
        );
    }

    #[test]
    fn the_guard_keeps_the_live_groups() {
        use super::stop::{guard_line, GuardStep};
        let mut live = Vec::new();
        for l in ["+10", "+11", "-10", "junk", "+12\n"] {
            assert_eq!(guard_line(&mut live, l), GuardStep::Go, "{l}");
        }
        assert_eq!(live, [11, 12]);
        assert_eq!(guard_line(&mut live, "done"), GuardStep::Done);
    }
}
