//! How the guest agent and the harness talk: the shared directory's
//! mount points, the files written into it, the console marker.

/// Where the guest sees its results directory (vng `--rwdir=GUEST=HOST`).
pub const GUEST_OUT: &str = "/run/unlink-out";
/// The guest-local tmpfs the workloads run on (never the share).
pub const WORKDIR: &str = "/run/unlink-work";

/// The printk scenario's `--trace-buffer-kib`: not the kernel's default
/// (1408 on Debian), so the gate can tell from tracefs that it was applied.
pub const PRINTK_TRACE_BUFFER_KIB: u32 = 2048;

/// Seconds a run of the tracer that traces nothing (`--show-target`, a bad
/// argument) may take before the agent kills it: each exits at once.
pub const CLI_RUN_LIMIT_S: u64 = 20;

/// Every console line of the agent starts with this.
pub const CONSOLE_MARKER: &str = "UNLINK-GUEST: ";
/// The agent's first line: the guest is up (the run deadline starts).
pub const GUEST_START_MARKER: &str = "UNLINK-GUEST: start";
/// `harness run`: each line the command writes (stdout or stderr), on the
/// console after [`CONSOLE_MARKER`] and this.
pub const EXEC_OUTPUT: &str = "output ";
/// `harness run`: the command's exit, after [`CONSOLE_MARKER`] and this.
pub const EXEC_EXIT: &str = "exit ";

/// File names in a scenario's directory (`OUT/SCENARIO/`), or at the top of
/// `OUT` where said.
pub mod files {
    /// The agent's verdict on the run (`RunOutcome`), written last.
    pub const RESULT: &str = "result.json";
    /// The workload's calls (`Vec<Step>`).
    pub const WORKLOAD: &str = "workload.json";
    /// The tracer's stdout.
    pub const TRACE: &str = "trace.out";
    /// The tracer's stderr (its last line is the summary).
    pub const TRACER_ERR: &str = "tracer.err";
    /// The tracefs oracle's trace.
    pub const ORACLE: &str = "oracle.txt";
    /// The tracer's ready file (written once attached).
    pub const READY: &str = "ready";
    /// Written by the harness beside the run: its normalised trace.
    pub const NORMALISED: &str = "normalised.txt";
    /// Load scenarios: the kernel's `kprobe_events` while the tracer was
    /// attached (its return probe's entry, as the kernel lists it).
    pub const KPROBE_EVENTS_ATTACHED: &str = "kprobe_events.attached";
    /// Load scenarios: `kprobe_events` once the tracer exited (its entry
    /// removed).
    pub const KPROBE_EVENTS_AFTER: &str = "kprobe_events.after";
    /// At the top of OUT: the agent ran every scenario.
    pub const DONE: &str = "done";
    /// At the top of OUT: an overhead run's rounds (`OverheadRun`).
    pub const OVERHEAD_RUN: &str = "overhead-run.json";
    /// At the top of OUT: `harness run`'s command's exit code (a signal
    /// that ended it as 128 + its number), written before `done`.
    pub const EXIT_CODE: &str = "exit-code";
}
