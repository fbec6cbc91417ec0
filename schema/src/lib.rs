//! The tracer's JSON output, shared by the tracer (which writes it) and the
//! harness (which reads it). Serde types only: no BPF, no clang needed.

use serde::{Deserialize, Serialize};

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
    pub entries: u64,
    pub returns: u64,
    pub events: u64,
    /// Events lost because the ring buffer was full.
    pub dropped: u64,
    /// Returns that found no stashed entry.
    pub unpaired_returns: u64,
    /// Entries still waiting for their return when the session ended.
    pub inflight: u64,
    /// Entries that could not be stashed (in-flight map full).
    pub stash_full: u64,
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
}
