//! The tracer's JSON output, shared by the tracer (which writes it) and the
//! harness (which reads it). Serde types only: no BPF, no clang needed.

use serde::{Deserialize, Serialize};

pub mod protocol;
pub mod scenarios;
pub mod vocab;

pub use scenarios::{LoadSpec, Losses, ScenarioSpec, SCENARIO_SPECS};
pub use vocab::{Failure, OverheadMode, Scenario, TracerMode};

/// The tracer's filename buffer (`FNAME_MAX` in `bpf/unlink.h`): paths of
/// this many bytes or more reach user space truncated (and flagged).
pub const FILENAME_BUF: usize = 512;

/// The kernel's `PATH_MAX`: a path argument of this many bytes or more
/// (its NUL not counted) is refused by `getname()` with ENAMETOOLONG
/// before the unlink function sees a name.
pub const PATH_MAX: usize = 4096;

/// One unlink call (`unlink-tracer --json`, one per line); fields are
/// documented in the README.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonEvent {
    /// Wall-clock time of the entry, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// `null` when the traced function has no dfd parameter; -100 is AT_FDCWD.
    pub dfd: Option<i32>,
    /// The path as the kernel saw it, escaped (see the tracer's `escape_bytes`).
    pub filename: String,
    pub filename_truncated: bool,
    pub filename_unreadable: bool,
    pub ret: i64,
    /// `ENOENT` etc. for a negative ret, else `null`.
    pub errno: Option<String>,
    pub latency_ns: u64,
    /// The kernel function traced.
    pub symbol: String,
}

/// The kernel-side counters and what user space derives from them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Entry probe hits (after the pid filter).
    pub entries: u64,
    /// Return probe hits that found their entry (received, or known lost).
    pub returns: u64,
    /// Calls joined from an entry and a return record.
    pub events: u64,
    /// Calls lost because the ring buffer was full (entry or return record).
    pub dropped: u64,
    /// Return records whose thread had no open entry.
    pub unpaired_returns: u64,
    /// Entries whose return never came (replaced by their thread's next
    /// call, or still open when the session ended), lost records aside.
    pub inflight: u64,
    /// Entry records lost while the map that remembers them for their
    /// return was full (their returns then count as unpaired).
    #[serde(alias = "stash_full")]
    pub lost_untracked: u64,
    /// Missed probe hits as the kernel reports them (kprobe links, Linux 6.7+).
    pub kernel_missed: Option<u64>,
    /// Ring buffer records that did not decode (a layout mismatch; never expected).
    #[serde(default)]
    pub decode_errors: u64,
}

/// The end-of-run summary (`--json`: the last line on stderr).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `kprobe`, `fentry` or `printk`.
    pub mode: String,
    pub symbol: String,
    pub ret_width_bits: u32,
    /// Lines printed (after --comm filtering).
    pub printed: u64,
    /// `signal`, `duration` or `count`.
    pub stopped_by: String,
    #[serde(flatten)]
    pub counters: Counters,
    /// What each attached BPF program cost, where the kernel keeps BPF
    /// statistics (`kernel.bpf_stats_enabled = 1`); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramStats>,
    /// How the return probe was attached (modes with a kretprobe only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_probe: Option<ReturnProbe>,
}

/// The tracer's default `--maxactive`: return instances of its kretprobe,
/// so that many calls may be inside the function at once before a return
/// is missed (the kernel's own default is NR_CPUS on a non-preemptible
/// kernel before 6.2, else max(10, 2 x CPUs)).
pub const DEFAULT_MAXACTIVE: u32 = 1024;

/// The most return instances a kretprobe can have (the kernel's
/// `KRETPROBE_MAXACTIVE_MAX`).
pub const MAX_MAXACTIVE: u32 = 4096;

/// The tracefs group of the tracer's return probes (`kprobe_events`
/// entries `rN:unlink_tracer/ret_PID_N SYMBOL`).
pub const RETPROBE_GROUP: &str = "unlink_tracer";

/// How a kretprobe was attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReturnAttach {
    /// A `kprobe_events` entry of tracefs (`rN:`), with `maxactive`
    /// return instances of its own.
    Tracefs,
    /// The perf kprobe PMU: the kernel's default return instances.
    Perf,
}

impl ReturnAttach {
    pub fn name(self) -> &'static str {
        match self {
            ReturnAttach::Tracefs => "tracefs",
            ReturnAttach::Perf => "perf",
        }
    }
}

/// The return probe of a run: how it was attached, with how many return
/// instances (0: the kernel's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnProbe {
    pub via: ReturnAttach,
    pub maxactive: u32,
}

/// The kernel's run statistics of one BPF program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStats {
    pub name: String,
    /// Times the program ran.
    pub run_cnt: u64,
    /// Nanoseconds it ran in total (guest instructions under `-icount shift=0`).
    pub run_time_ns: u64,
}

/// A kernel release's major and minor version: `6.1.0-50-amd64` → (6, 1),
/// `7.3-amd64` → (7, 3); None when it does not start with them. The one
/// release parser of the workspace (the tracer and the harness use it).
pub fn release_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Renders bytes so that every byte is visible and the text maps back to
/// exactly one byte string: printable ASCII and valid multi-byte UTF-8 as
/// they are; `\\`, `\"`, `\n`, `\t`, `\r` escaped; any other byte as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The inverse of [`escape_bytes`]: the bytes an escaped string stands
/// for, or None if it is not an escaped form (a lone backslash, an unknown
/// escape, a bad `\xNN`).
pub fn unescape_bytes(escaped: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let (&e, tail) = rest.split_first()?;
        rest = tail;
        match e {
            b'\\' | b'"' => out.push(e),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let hex = rest.get(..2)?;
                rest = &rest[2..];
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// One workload call made by the guest agent (`workload.json`, a list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The syscall as written: `unlink`, `unlinkat`, `unlinkat(AT_REMOVEDIR)`.
    pub op: String,
    /// `AT_FDCWD`, `DIRFD` (an open directory), or `null` for `unlink`.
    pub dfd: Option<String>,
    /// The raw dirfd number when `dfd` is `DIRFD`.
    pub dirfd: Option<i32>,
    /// The path argument, escaped with [`escape_bytes`].
    pub path: String,
    /// Its length in bytes.
    pub path_len: usize,
    /// The uid the call ran as.
    pub uid: u32,
    pub pid: u32,
    pub tid: u32,
    /// The calling thread's command name as the kernel knows it
    /// (`PR_GET_NAME`), escaped with [`escape_bytes`].
    pub comm: String,
    /// CLOCK_REALTIME (ns since the Unix epoch) read just before the call.
    pub start_ns: u64,
    /// CLOCK_REALTIME read just after it returned.
    pub end_ns: u64,
    /// 0, or minus the errno the syscall failed with.
    pub ret: i64,
    /// The `unlinkat` flags passed (0 for `unlink`): `AT_REMOVEDIR` takes
    /// the rmdir path, any other flag is refused before the unlink
    /// function runs.
    #[serde(default)]
    pub flags: i32,
    /// The path argument was a pointer the kernel cannot read (the call
    /// fails with EFAULT); `path` is then empty.
    #[serde(default)]
    pub bad_pointer: bool,
}

/// What the agent says about one scenario run (`result.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub ok: bool,
    pub error: Option<String>,
    /// Why the run failed, where the tracer or the agent said which kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub kernel_release: String,
    pub scenario: String,
    pub mode: String,
    pub attach_s: f64,
    pub workload_s: f64,
    /// Seconds from the scenario's start to its results written.
    #[serde(default)]
    pub total_s: f64,
    pub tracer_exit_code: Option<i32>,
    /// The kernel's own kprobe tracer ran beside (`oracle.txt`).
    pub oracle: bool,
    /// For the load scenarios (storm, contention).
    pub load: Option<Load>,
    /// The unlink-path function the kernel can probe, chosen by the agent
    /// from tracefs `available_filter_functions`, independently of the
    /// tracer (None where tracefs could not say).
    #[serde(default)]
    pub kernel_symbol: Option<String>,
    /// The options scenario: the tracers it ran and who made which calls.
    #[serde(default)]
    pub options: Option<OptionsRun>,
    /// printk mode: the kernel's trace buffer size per CPU (tracefs
    /// `buffer_size_kb`) once the tracer, run with `--trace-buffer-kib`,
    /// was attached.
    #[serde(default)]
    pub trace_buffer_kib: Option<u32>,
}

/// The options scenario (`options`): one workload, a second process
/// unlinking at the same time, and one tracer per option under test, all
/// attached together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionsRun {
    /// The agent's pid: the chosen process of `--pid` and `--count`.
    pub pid: u32,
    /// The other process, unlinking beside the agent under its own comm.
    pub other_pid: u32,
    /// The other process's comm: the chosen command of `--comm`.
    pub other_comm: String,
    /// `--count` of the count tracer.
    pub count: u64,
    /// `--duration` of the duration tracer, seconds.
    pub duration_s: f64,
    pub tracers: Vec<OptionTracer>,
    /// The tracer run without tracing: `--show-target`, and each bad
    /// argument the CLI must refuse.
    #[serde(default)]
    pub cli: Vec<CliRun>,
    /// The tracer in each empty mode (`--mode empty-*`), one at a time,
    /// with the kernel's list of registered kprobes while it was attached.
    #[serde(default)]
    pub empty_modes: Vec<EmptyModeRun>,
}

/// One run of the tracer in an empty mode, stopped once attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyModeRun {
    pub mode: TracerMode,
    pub exit_code: Option<i32>,
    pub stderr: String,
    /// `/sys/kernel/debug/kprobes/list` while it was attached: every
    /// kprobe (`k`) and kretprobe (`r`) the kernel had registered.
    pub kprobes: String,
    /// tracefs `kprobe_events` while it was attached (the tracer's return
    /// probe entries, a dead tracer's left-over included).
    #[serde(default)]
    pub kprobe_events: String,
    /// Killed (SIGKILL) once attached, so its tracefs entry outlives it
    /// for the next run to remove.
    #[serde(default)]
    pub killed: bool,
}

/// One run of the tracer that traces nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CliRun {
    pub args: Vec<String>,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// It had not exited after [`protocol::CLI_RUN_LIMIT_S`] and was
    /// killed (a bad argument taken, the tracer tracing).
    #[serde(default)]
    pub killed: bool,
}

/// What each tracer of the options scenario is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptionProbe {
    /// Text output (no `--json`), every process.
    Text,
    /// `--json --pid AGENT`: the reference JSON of the agent's calls.
    Pid,
    /// `--json --comm OTHER`.
    Comm,
    /// `--json --pid AGENT --count N`.
    Count,
    /// `--json --duration S`.
    Duration,
}

impl OptionProbe {
    pub const ALL: [OptionProbe; 5] = [
        OptionProbe::Text,
        OptionProbe::Pid,
        OptionProbe::Comm,
        OptionProbe::Count,
        OptionProbe::Duration,
    ];

    /// The stem of its output files: `NAME.out` (stdout), `NAME.err` (stderr).
    pub fn name(self) -> &'static str {
        match self {
            OptionProbe::Text => "text",
            OptionProbe::Pid => "pid",
            OptionProbe::Comm => "comm",
            OptionProbe::Count => "count",
            OptionProbe::Duration => "duration",
        }
    }
}

/// One tracer of the options scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionTracer {
    pub probe: OptionProbe,
    /// Its command-line arguments.
    pub args: Vec<String>,
    pub exit_code: Option<i32>,
    /// It exited before the agent stopped it (what `--count` and
    /// `--duration` must do, and the others must not).
    pub exited_by_itself: bool,
    /// Seconds from its ready file's appearance to its exit, as the agent
    /// saw them.
    pub ready_to_exit_s: f64,
    /// What that interval was at least (the last look that found it
    /// running, minus the first that found its ready file) and at most
    /// (its exit seen, minus the last look that found no ready file): the
    /// agent's own scheduling delays cannot make a tracer look early or late.
    #[serde(default)]
    pub ready_to_exit_min_s: f64,
    #[serde(default)]
    pub ready_to_exit_max_s: f64,
}

/// A load scenario's own count of what it did and what the tracer sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    pub threads: u32,
    pub calls_per_thread: u32,
    /// unlink calls made (all threads).
    pub calls: u64,
    /// unlink calls that failed.
    pub failures: u64,
    /// The workload's pid (its threads share it; the tracer ran with
    /// `--pid` set to it, so its counters are the workload's alone).
    pub pid: u32,
    /// The tracer was stopped (SIGSTOP) for the whole workload, so its ring
    /// had to overflow: losses are certain, and must be counted exactly.
    #[serde(default)]
    pub consumer_paused: bool,
    /// Calls held inside the traced function (asleep on a directory lock)
    /// while the ring filled, included in `calls`: their return records
    /// meet a full ring.
    #[serde(default)]
    pub held: u32,
    /// Calls made to fill the ring while the held calls waited (included
    /// in `calls`): with every return instance of the kretprobe taken by
    /// the held calls, their returns are missed.
    #[serde(default)]
    pub fill_calls: u64,
    /// The kernel kept BPF run statistics while the tracer ran
    /// (`kernel.bpf_stats_enabled`): its summary must report each attached
    /// program's runs.
    #[serde(default)]
    pub bpf_stats: bool,
}

/// Why the tracer stopped with an error, as it says so with `--json`: its
/// last stderr line, `{"error": KIND, "message": TEXT}` (exit status 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracerError {
    pub error: Failure,
    pub message: String,
}

impl TracerError {
    /// The last line of a tracer's stderr that is a `TracerError`, if any.
    pub fn last_in(stderr: &str) -> Option<TracerError> {
        stderr
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<TracerError>(l.trim()).ok())
    }
}

/// The function the tracer attaches to on the running kernel
/// (`unlink-tracer --show-target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub symbol: String,
    /// Its prototype, as the kernel's BTF has it.
    pub proto: String,
    /// The function returns a 32-bit int.
    pub ret_is_int: bool,
    /// Parameter index of `dfd`, if there is one.
    pub dfd_arg: Option<u32>,
    /// Parameter index of the `struct filename *`.
    pub name_arg: u32,
}

/// The probe modes an overhead run knows (the guest agent runs them, the
/// harness reports them), in report order: the names of [`OverheadMode`].
pub const OVERHEAD_MODES: &[&str] = &vocab::OVERHEAD_MODE_NAMES;

/// One measured round of one probe mode in an overhead run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverheadRound {
    pub mode: String,
    /// 0-based; rounds interleave the modes.
    pub round: u32,
    pub ok: bool,
    pub error: Option<String>,
    /// Why the round's probe failed, where it said which kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Seconds until the probe was attached (0 for the baseline).
    pub attach_s: f64,
    /// Seconds the criterion bench ran.
    pub bench_s: f64,
    /// Seconds the probe's output kept coming after the bench ended (work
    /// the consumer deferred: not in the bench's figures).
    #[serde(default)]
    pub drain_s: f64,
    /// Calls the probe reported seeing (tracer events, bpftrace lines / 2,
    /// printk lines / 2); None where the probe has no output.
    pub probe_calls: Option<u64>,
    /// Events the probe says it dropped (tracer modes).
    pub probe_dropped: Option<u64>,
    /// The tracer's BPF programs' own run statistics (with `--bpf-stats`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramStats>,
    /// Where criterion wrote this round's results (CRITERION_HOME), relative
    /// to the run's output directory.
    pub criterion_dir: String,
}

/// What the guest agent writes at the end of an overhead run
/// (`overhead-run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverheadRun {
    pub kernel_release: String,
    /// Where the probes were attached (None if the tracer could not say).
    pub target: Option<TargetInfo>,
    /// The bench binary's arguments (criterion's timing settings).
    pub bench_args: Vec<String>,
    pub rounds: Vec<OverheadRound>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every escape class at the start, middle and end of a name maps back
    /// to its bytes; what no escaped form can be is refused.
    #[test]
    fn unescape_inverts_escape() {
        let classes: [&[u8]; 12] = [
            b"\\",
            b"\"",
            b"\n",
            b"\t",
            b"\r",
            b"\x01",
            b"\x7f",
            b"\xff",
            b"\xe2\x82",
            "\u{85}".as_bytes(),
            "\u{e9}".as_bytes(),
            "\u{1f642}".as_bytes(),
        ];
        for c in classes {
            for bytes in [
                [c, b"mid"].concat(),
                [b"a", c, b"b"].concat(),
                [b"end", c].concat(),
                c.to_vec(),
            ] {
                let e = escape_bytes(&bytes);
                assert_eq!(unescape_bytes(&e), Some(bytes.clone()), "{e}");
            }
        }
        for bad in ["a\\", "\\q", "\\x4", "\\xzz"] {
            assert_eq!(unescape_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_tracer_error_is_its_last_json_line() {
        let err = "libbpf: something\n{\"error\":\"no-trampolines\",\"message\":\"fentry/fexit is not available\"}\n";
        assert_eq!(
            TracerError::last_in(err),
            Some(TracerError {
                error: Failure::NoTrampolines,
                message: "fentry/fexit is not available".into()
            })
        );
        for none in [
            "",
            "unlink-tracer: no kprobes\n",
            "{\"error\":\"nope\",\"message\":\"x\"}",
        ] {
            assert_eq!(TracerError::last_in(none), None, "{none}");
        }
    }

    #[test]
    fn releases() {
        let cases = [
            ("6.1.0-47-amd64", Some((6, 1))),
            ("5.10.0-32-arm64", Some((5, 10))),
            ("7.3.0-rc5-amd64", Some((7, 3))),
            ("7.3-amd64", Some((7, 3))),
            ("6.12.117+deb13-amd64", Some((6, 12))),
            ("garbage", None),
            ("x", None),
        ];
        for (rel, want) in cases {
            assert_eq!(release_version(rel), want, "{rel}");
        }
    }
}
