//! `harness test`: provision, then the workspace lints and the whole test
//! suite (guest boots included).

use std::process::ExitCode;

use anyhow::{Context, Result};

use harness::process::commands;

use super::note;

/// Test threads: more than the integration binary has guest tests.
const TEST_THREADS: usize = 16;

pub fn run(args: &[String]) -> Result<ExitCode> {
    super::setup::run()?;
    let root = harness::paths::repo_root();
    // The workspace lints are invariants (engine code never prints): clippy
    // is part of the tests.
    let has_clippy = commands::cargo(["clippy", "--version"])
        .and_then(|mut c| Ok(c.output()?))
        .is_ok_and(|o| o.status.success());
    if !has_clippy {
        anyhow::bail!("clippy is not installed; run: rustup component add clippy");
    }
    note("running cargo clippy --workspace --all-targets -- -D warnings (the workspace lints)");
    let lint = commands::cargo([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?
    .current_dir(&root)
    .status()
    .context("running cargo clippy")?;
    if !lint.success() {
        eprintln!("harness: the workspace lints failed (see above)");
        return Ok(ExitCode::FAILURE);
    }
    note("running cargo test --workspace (the guest boots take a few minutes under TCG)");
    let mut child = {
        use std::os::unix::process::CommandExt;
        let mut test = vec!["test".to_string(), "--workspace".into(), "--locked".into()];
        test.extend(if args.is_empty() {
            // Show what the guest tests saw (kernel booted, snapshot checked).
            vec!["--".to_string(), "--show-output".to_string()]
        } else {
            args.to_vec()
        });
        commands::cargo(test)?
            .current_dir(&root)
            .env("INSTA_UPDATE", "no")
            // The guest tests wait for their guests' slots (one per core,
            // harness/tests/it/main.rs), not for a test thread: with more
            // threads than tests, a test waiting for every slot never
            // holds a thread a one-guest test could run on.
            .env(
                "RUST_TEST_THREADS",
                std::env::var("RUST_TEST_THREADS").unwrap_or_else(|_| TEST_THREADS.to_string()),
            )
            // Its own group, so a signal to us reaches all of it, once.
            .process_group(0)
            .spawn()
            .context("running cargo test")?
    };
    super::signals::forward_to_group(child.id() as i32)?;
    let status = child.wait().context("waiting for cargo test")?;
    if let Some(code) = super::signals::cancelled_code() {
        return Ok(code);
    }
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
