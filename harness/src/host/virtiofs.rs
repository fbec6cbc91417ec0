//! Whether virtiofsd can serve a directory here. It sandboxes itself
//! (mount namespace, pivot_root), which a chroot or a locked-down
//! container refuses; vng then waits for a socket that never opens and
//! QEMU fails with "Connection refused", which says nothing of the cause.
//! One short start answers it before any guest boots.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long virtiofsd may take to open its socket.
const DEADLINE: Duration = Duration::from_secs(5);

/// Starts `dir/virtiofsd` on a scratch directory until its socket opens;
/// Err says why it could not (its own error line when it gave one).
pub fn check(dir: &Path) -> Result<(), String> {
    let scratch = tempfile::Builder::new()
        .prefix("virtiofsd-check")
        .tempdir()
        .map_err(|e| format!("no scratch directory: {e}"))?;
    let socket = scratch.path().join("sock");
    let mut child = crate::process::commands::program(
        dir.join("virtiofsd"),
        [
            format!("--socket-path={}", socket.display()),
            format!("--shared-dir={}", scratch.path().display()),
        ],
    )
    .map_err(|e| format!("{e:#}"))?
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .map_err(|e| format!("{}: {e}", dir.join("virtiofsd").display()))?;
    let started = Instant::now();
    let outcome = loop {
        if socket.exists() {
            break Ok(());
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                break Err(failure_line(&err).unwrap_or_else(|| format!("exited ({status})")));
            }
            Ok(None) if started.elapsed() > DEADLINE => {
                break Err(format!(
                    "its socket did not open within {} s",
                    DEADLINE.as_secs()
                ))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(e.to_string()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// virtiofsd's own reason, from its log (`[time ERROR virtiofsd] MSG`).
pub fn failure_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find_map(|l| l.split_once(" ERROR ").map(|(_, rest)| rest))
        .map(|rest| match rest.split_once("] ") {
            Some((_, msg)) => msg.trim().to_string(),
            None => rest.trim().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_reason_is_its_error_line() {
        for (log, want) in [
            (
                "[2026-12-01T17:26:32Z WARN  virtiofsd::limits] Failure when trying to set the limit\n\
                 [2026-12-01T17:26:32Z ERROR virtiofsd] Error entering sandbox: CleanMount(Os { code: 22 })\n",
                Some("Error entering sandbox: CleanMount(Os { code: 22 })"),
            ),
            ("[t INFO  virtiofsd] Waiting for vhost-user socket connection...\n", None),
            ("", None),
        ] {
            assert_eq!(failure_line(log).as_deref(), want, "{log}");
        }
    }

    #[test]
    fn a_missing_binary_is_named() {
        let e = check(Path::new("/nonexistent")).expect_err("no virtiofsd there");
        assert!(e.starts_with("/nonexistent/virtiofsd: "), "{e}");
    }
}
