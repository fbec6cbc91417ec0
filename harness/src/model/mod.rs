//! The rows every part of the harness reads and writes: a cell's id and
//! its result (the row of `matrix.json` and `overhead.json`), its verdicts,
//! the arch and the accel it ran with, and (in [`figures`]) what its
//! overhead figures hold. A leaf: it uses no other module of the crate.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod figures;

use figures::CellOverhead;

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Debian's architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Rust's target triple.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Arch {
    /// The arch this harness runs on.
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        }
    }
}

/// CPU acceleration for QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM when a probe boot proves it works, else TCG.
    Auto,
    Kvm,
    Tcg,
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CellId {
    pub alias: String,
    pub arch: Arch,
}

impl std::fmt::Display for CellId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.alias, self.arch)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    Timeout,
    Error,
    /// A scenario the kernel cannot support, established from the kernel
    /// itself (its config), not from a version guess.
    ExpectedLimitation,
    /// The run was cancelled (SIGINT, SIGTERM, SIGHUP) before the cell
    /// finished; its guest was killed.
    Interrupted,
}

impl Status {
    /// Whether this verdict lets the cell pass.
    pub fn is_ok(self) -> bool {
        matches!(self, Status::Pass | Status::ExpectedLimitation)
    }
}

/// One scenario's verdict in a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// Why its run failed, where the tracer or the agent said which kind
    /// (verdicts decide on this, never on the detail's text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<unlink_schema::Failure>,
}

impl ScenarioResult {
    /// A verdict with no failure kind.
    pub fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        ScenarioResult {
            name: name.into(),
            status,
            detail: detail.into(),
            failure: None,
        }
    }
}

/// One row of matrix.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub alias: String,
    pub suite: String,
    pub arch: Arch,
    /// The kernel package that was booted.
    pub kernel_package: Option<String>,
    /// Its exact Debian version.
    pub kernel: Option<String>,
    /// `uname -r` in the guest.
    pub release: Option<String>,
    pub accel: Accel,
    /// How the root and results reached the guest (virtio-fs or 9p).
    pub transport: Option<String>,
    pub status: Status,
    /// The kernel function the tracer attached to.
    pub symbol: Option<String>,
    pub ret_width_bits: Option<u32>,
    /// Seconds from QEMU start to the kernel's banner.
    pub banner_s: Option<f64>,
    /// Seconds from QEMU start to the guest agent's start (boot to userspace).
    pub boot_s: Option<f64>,
    /// Seconds the guest agent ran (all scenarios).
    pub run_s: Option<f64>,
    pub total_s: f64,
    /// Workload events seen in the tutorial scenario.
    pub events: Option<usize>,
    /// Returns missed in the contention scenario (kernel-reported from 6.7,
    /// else entries minus returns).
    pub missed_returns: Option<u64>,
    /// The snapshot each snapshotted scenario was checked against.
    pub snapshots: std::collections::BTreeMap<String, String>,
    pub scenarios: Vec<ScenarioResult>,
    /// What each probe mode costs an unlink (`harness overhead` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead: Option<CellOverhead>,
    pub error: Option<String>,
    /// Cell directory inside the report dir (console log, raw guest output).
    pub dir: PathBuf,
    /// `harness run`: the command's exit code (128 + a signal's number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Where the cell's time went, phase by phase, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Span>,
}

/// One phase of a cell's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// `fetch`, `root`, `qemu→banner`, `banner→agent`, `SCENARIO attach`,
    /// `SCENARIO workload`, `SCENARIO stop`, `agent other`, `checks`.
    pub phase: String,
    pub s: f64,
}

impl Span {
    pub fn new(phase: impl Into<String>, s: f64) -> Span {
        Span {
            phase: phase.into(),
            s: (s * 100.0).round() / 100.0,
        }
    }

    /// The phase without its scenario (`storm attach` → `attach`), for
    /// totals across scenarios and cells.
    pub fn kind(&self) -> &str {
        self.scenario().map_or(self.phase.as_str(), |(_, k)| k)
    }

    /// (scenario, part) of a scenario's phase (`storm attach`).
    pub fn scenario(&self) -> Option<(&str, &str)> {
        self.phase
            .rsplit_once(' ')
            .filter(|(_, k)| matches!(*k, "attach" | "workload" | "stop"))
    }
}

/// A cell row with plausible values, for tests of what reads rows.
#[cfg(test)]
pub(crate) fn test_cell(alias: &str, arch: Arch, status: Status) -> CellResult {
    CellResult {
        alias: alias.into(),
        suite: alias.into(),
        arch,
        kernel_package: Some(format!("linux-image-{alias}")),
        kernel: Some("1.0-1".into()),
        release: Some("1.0".into()),
        accel: Accel::Tcg,
        transport: Some("virtio-fs".into()),
        status,
        symbol: Some("do_unlinkat".into()),
        ret_width_bits: Some(32),
        banner_s: Some(1.0),
        boot_s: Some(5.0),
        run_s: Some(10.0),
        total_s: 16.0,
        events: Some(3),
        missed_returns: None,
        snapshots: Default::default(),
        overhead: None,
        scenarios: Vec::new(),
        error: (status != Status::Pass).then(|| "it broke".to_string()),
        dir: "/r".into(),
        exit_code: None,
        timeline: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        for (s, want) in [
            ("x86_64", Some(Arch::X86_64)),
            ("aarch64", Some(Arch::Arm64)),
            ("mips", None),
        ] {
            assert_eq!(Arch::parse(s), want);
        }
    }
}
