//! Stopping a run from outside: SIGINT, SIGTERM and SIGHUP cancel it (every
//! guest killed at once, unfinished cells reported `interrupted`, exit
//! 128 + the signal); a second signal exits at once. A guard process kills
//! the run's guests if the harness itself dies, SIGKILL included.

use std::io::BufRead;
use std::process::Stdio;

use anyhow::{Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use harness::process::stop;

const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

extern "C" fn on_signal(sig: i32) {
    if stop::cancel(sig) {
        // The second signal: the guests are killed already; go now.
        // SAFETY: _exit is async-signal-safe.
        unsafe { nix::libc::_exit(128 + sig) }
    }
}

static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the handlers and starts the guard (once per process); call
/// before any guest boots.
pub fn install() -> Result<()> {
    if INSTALLED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in SIGNALS {
        // SAFETY: the handler only touches atomics and calls kill/_exit.
        unsafe { sigaction(sig, &action) }.with_context(|| format!("handling {sig}"))?;
    }
    let exe = std::env::current_exe().context("finding the harness binary")?;
    let mut guard = {
        use std::os::unix::process::CommandExt;
        harness::process::commands::program(exe, ["__guard"])?
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            // Its own group: a Ctrl-C on the terminal does not reach it.
            .process_group(0)
            .spawn()
            .context("starting the guard process")?
    };
    let input = guard.stdin.take().context("the guard's stdin")?;
    stop::set_guard(Box::new(input));
    Ok(())
}

/// The exit code of a cancelled run (128 + the signal), if it was.
pub fn cancelled_code() -> Option<std::process::ExitCode> {
    stop::cancelled().map(|sig| std::process::ExitCode::from((128 + sig) as u8))
}

/// `harness __guard`: reads `+PGID` / `-PGID` lines; at `done` it exits,
/// at end of input (the harness died) it kills every group still alive.
pub fn guard() -> Result<std::process::ExitCode> {
    for sig in SIGNALS {
        // SAFETY: ignoring a signal installs no handler code.
        unsafe {
            sigaction(
                sig,
                &SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty()),
            )
        }
        .with_context(|| format!("ignoring {sig}"))?;
    }
    let mut live = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if stop::guard_line(&mut live, &line) == stop::GuardStep::Done {
            return Ok(std::process::ExitCode::SUCCESS);
        }
    }
    for pgid in live {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The process group `harness test` runs `cargo test` in (0: none).
static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward_signal(sig: i32) {
    let group = FORWARD_TO.load(std::sync::atomic::Ordering::SeqCst);
    let again = stop::cancel(sig);
    if group > 0 {
        // SAFETY: kill(2) and _exit(2) are async-signal-safe.
        unsafe {
            nix::libc::kill(-group, if again { nix::libc::SIGKILL } else { sig });
        }
    }
    if again {
        // SAFETY: as above.
        unsafe { nix::libc::_exit(128 + sig) }
    }
}

/// `harness test`: SIGINT, SIGTERM and SIGHUP go on to the process group
/// of `cargo test` (its test binaries and the harness runs they start,
/// each of which then stops its own guests); a second signal kills that
/// group and exits at once.
pub fn forward_to_group(pgid: i32) -> Result<()> {
    FORWARD_TO.store(pgid, std::sync::atomic::Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(forward_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in SIGNALS {
        // SAFETY: the handler only touches atomics and calls kill/_exit.
        unsafe { sigaction(sig, &action) }.with_context(|| format!("handling {sig}"))?;
    }
    Ok(())
}
