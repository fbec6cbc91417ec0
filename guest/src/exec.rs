//! `unlink-guest exec`: a user's command in a cell's guest (`harness run`),
//! with what the agent's scenarios have: the guest-local tmpfs as its
//! directory, tracefs mounted, the tracer and the agent on PATH. Each line it writes goes
//! to the console behind the marker the harness relays; its exit code is
//! the caller's to write.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use unlink_schema::protocol::{CONSOLE_MARKER, EXEC_OUTPUT, WORKDIR};

/// Runs `command` and relays its output; its exit code (128 + the signal
/// that ended it).
pub fn run(out: &Path, command: &[String]) -> Result<i32> {
    crate::prepare_workdir()?;
    // tracefs where a person looks for it (the tracer mounts it too).
    let tracing = Path::new("/sys/kernel/tracing");
    if !tracing.join("trace").exists() {
        nix::mount::mount(
            Some("tracefs"),
            tracing,
            Some("tracefs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .context("mounting tracefs on /sys/kernel/tracing")?;
    }
    let bin = out.join("bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
    );
    let (program, args) = command.split_first().context("no command given")?;
    let mut child = Command::new(program)
        .args(args)
        .current_dir(WORKDIR)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let relays: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                println!(
                    "{CONSOLE_MARKER}{EXEC_OUTPUT}{}",
                    String::from_utf8_lossy(&line)
                );
            }
        })
    })
    .collect();
    let status = child.wait().context("waiting for the command")?;
    for r in relays {
        let _ = r.join();
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
