//! `unlink-guest`: runs inside a test guest. Starts the tracer, waits until
//! it is attached, drives a workload in a guest-local tmpfs, stops the
//! tracer and writes everything to the shared results directory:
//!
//! - `trace.out`      the tracer's stdout (JSON lines, or trace_pipe lines in printk mode)
//! - `tracer.err`     the tracer's stderr (its last line is the JSON summary)
//! - `workload.json`  each step with its pid and exit status
//! - `result.json`    the agent's own verdict, written last
//!
//! The host reads these files; nothing here prints to the console except
//! a final marker line, so the console log stays a kernel log.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(name = "unlink-guest")]
struct Cli {
    /// The unlink-tracer binary to run.
    #[arg(long)]
    tracer: PathBuf,
    /// Shared directory for results.
    #[arg(long)]
    out: PathBuf,
    /// A run as NAME=MODE (mode: kprobe, fentry, printk); results go to OUT/NAME/.
    /// Runs happen in the order given, in one boot.
    #[arg(long = "run", value_parser = parse_run, required = true)]
    runs: Vec<(String, String)>,
    /// Seconds to wait for the tracer to attach.
    #[arg(long, default_value_t = 120)]
    attach_timeout: u64,
}

#[derive(Debug, Serialize)]
struct Step {
    argv: Vec<String>,
    pid: u32,
    exit_code: Option<i32>,
}

#[derive(Debug, Serialize)]
struct Outcome {
    ok: bool,
    error: Option<String>,
    kernel_release: String,
    mode: String,
    attach_s: f64,
    workload_s: f64,
    tracer_exit_code: Option<i32>,
}

/// Where the workload runs: a fresh tmpfs, never the shared directory.
const WORKDIR: &str = "/run/unlink-work";

/// The tutorial workload, then an unlink of a file that does not exist.
const TUTORIAL: &[&[&str]] = &[
    &["touch", "test1"],
    &["rm", "test1"],
    &["touch", "test2"],
    &["rm", "test2"],
    &["rm", "missing"],
];

fn parse_run(s: &str) -> Result<(String, String), String> {
    let (name, mode) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected NAME=MODE"))?;
    if name.is_empty() || name.contains('/') {
        return Err(format!("`{name}`: not a usable run name"));
    }
    Ok((name.to_string(), mode.to_string()))
}

fn main() {
    let cli = Cli::parse();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    // The host starts its run deadline at this line (its boot deadline ends).
    println!("UNLINK-GUEST: start {release}");
    let prepared = prepare_workdir();
    let mut all_ok = true;
    for (name, mode) in &cli.runs {
        let out = cli.out.join(name);
        let mut outcome = Outcome {
            ok: false,
            error: None,
            kernel_release: release.clone(),
            mode: mode.clone(),
            attach_s: 0.0,
            workload_s: 0.0,
            tracer_exit_code: None,
        };
        let result = match &prepared {
            Ok(()) => fs::create_dir_all(&out)
                .context("creating the run directory")
                .and_then(|()| run(&cli, mode, &out, &mut outcome)),
            Err(e) => Err(anyhow::anyhow!("{e:#}")),
        };
        match result {
            Ok(()) => outcome.ok = true,
            Err(e) => outcome.error = Some(format!("{e:#}")),
        }
        let written = serde_json::to_vec_pretty(&outcome)
            .map_err(anyhow::Error::from)
            .and_then(|b| fs::write(out.join("result.json"), b).map_err(Into::into));
        // One marker line per run on the console, for the host's log reader.
        match (&outcome.error, written) {
            (None, Ok(())) => println!("UNLINK-GUEST: {name} OK"),
            (Some(e), _) => println!("UNLINK-GUEST: {name} FAIL {e}"),
            (None, Err(e)) => println!("UNLINK-GUEST: {name} FAIL writing result.json: {e:#}"),
        }
        all_ok &= outcome.ok;
    }
    let _ = fs::write(cli.out.join("done"), if all_ok { "ok\n" } else { "fail\n" });
}

fn run(cli: &Cli, mode: &str, out_dir: &Path, outcome: &mut Outcome) -> Result<()> {
    let ready = out_dir.join("ready");
    let _ = fs::remove_file(&ready);
    let stdout = File::create(out_dir.join("trace.out")).context("creating trace.out")?;
    let stderr = File::create(out_dir.join("tracer.err")).context("creating tracer.err")?;
    let start = Instant::now();
    let mut tracer = Command::new(&cli.tracer)
        .args(["--json", "--mode", mode, "--ready-file"])
        .arg(&ready)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", cli.tracer.display()))?;

    let deadline = start + Duration::from_secs(cli.attach_timeout);
    while !ready.exists() {
        if let Some(status) = tracer.try_wait()? {
            outcome.tracer_exit_code = status.code();
            bail!("the tracer exited before attaching ({status}); see tracer.err");
        }
        if Instant::now() > deadline {
            stop(&mut tracer)?;
            bail!("the tracer did not attach within {}s", cli.attach_timeout);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    outcome.attach_s = start.elapsed().as_secs_f64();

    let work_start = Instant::now();
    let steps = run_workload(TUTORIAL);
    outcome.workload_s = work_start.elapsed().as_secs_f64();
    // Let the last events (and trace_pipe lines) reach the tracer.
    std::thread::sleep(Duration::from_millis(500));
    let code = stop(&mut tracer)?;
    outcome.tracer_exit_code = code;
    let steps = steps?;
    fs::write(
        out_dir.join("workload.json"),
        serde_json::to_vec_pretty(&steps)?,
    )
    .context("writing workload.json")?;
    if code != Some(0) {
        bail!("the tracer exited with {code:?}; see tracer.err");
    }
    Ok(())
}

fn prepare_workdir() -> Result<()> {
    let dir = Path::new(WORKDIR);
    fs::create_dir_all(dir).with_context(|| format!("creating {WORKDIR}"))?;
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64m"),
    )
    .with_context(|| format!("mounting a tmpfs on {WORKDIR}"))?;
    Ok(())
}

fn run_workload(steps: &[&[&str]]) -> Result<Vec<Step>> {
    let mut done = Vec::new();
    for argv in steps {
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .current_dir(WORKDIR)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {argv:?}"))?;
        let pid = child.id();
        let out = child.wait_with_output()?;
        done.push(Step {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            pid,
            exit_code: out.status.code(),
        });
    }
    Ok(done)
}

/// SIGINT, then wait up to 30 s, then SIGKILL.
fn stop(child: &mut Child) -> Result<Option<i32>> {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let status = child.wait()?;
            return Ok(status.code());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
