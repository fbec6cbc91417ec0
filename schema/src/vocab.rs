//! The shared vocabulary: scenarios, probe modes. One type each, used by
//! the tracer, the guest agent and the harness alike; each knows its own
//! name on the command line and in files.

use serde::{Deserialize, Serialize};

/// Defines an enum whose variants each have one name (their CLI and file
/// spelling), with `ALL`, `name()`, `parse()`, `Display` and serde as
/// that name.
macro_rules! named {
    ($(#[$m:meta])* $vis:vis enum $T:ident { $($(#[$vm:meta])* $V:ident = $n:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        $vis enum $T { $($(#[$vm])* #[serde(rename = $n)] $V,)* }

        impl $T {
            /// Every value, in order.
            pub const ALL: &'static [$T] = &[$($T::$V),*];

            /// Its name on the command line and in files.
            pub const fn name(self) -> &'static str {
                match self { $($T::$V => $n,)* }
            }

            /// The value of a name; Err lists the valid names.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($n => Ok($T::$V),)*
                    _ => Err(format!(
                        "unknown {} `{s}`; valid: {}",
                        stringify!($T),
                        Self::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $T {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $T {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::parse(s)
            }
        }
    };
}

named! {
    /// How the tracer probes the unlink path (`unlink-tracer --mode`).
    pub enum TracerMode {
        /// kprobe + kretprobe: an entry and a return record per call through
        /// a ring buffer, joined per thread in user space.
        Kprobe = "kprobe",
        /// fentry + fexit (BPF trampolines), same records.
        Fentry = "fentry",
        /// The tutorial: bpf_printk lines in trace_pipe.
        Printk = "printk",
        /// An empty kprobe: the cost of the entry mechanism alone (overhead runs).
        EmptyKprobe = "empty-kprobe",
        /// An empty kretprobe: the cost of the return mechanism alone.
        EmptyKretprobe = "empty-kretprobe",
        /// An empty kprobe + kretprobe pair.
        EmptyPair = "empty-pair",
    }
}

impl TracerMode {
    /// Whether the mode produces output (the empty modes do not).
    pub fn has_output(self) -> bool {
        matches!(
            self,
            TracerMode::Kprobe | TracerMode::Fentry | TracerMode::Printk
        )
    }
}

named! {
    /// A scenario of the gate: the guest agent runs its workload with the
    /// tracer, the harness judges what it wrote.
    pub enum Scenario {
        Tutorial = "tutorial",
        Errors = "errors",
        Names = "names",
        /// Who calls: threads, processes, names, uids, races.
        Callers = "callers",
        Printk = "printk",
        Fentry = "fentry",
        Storm = "storm",
        Burst = "burst",
        Contention = "contention",
        Options = "options",
    }
}

named! {
    /// What is attached to the unlink path in an overhead round.
    pub enum OverheadMode {
        /// Nothing.
        Baseline = "baseline",
        EmptyKprobe = "empty-kprobe",
        EmptyKretprobe = "empty-kretprobe",
        EmptyPair = "empty-pair",
        /// The tracer, counting without printing.
        Kprobe = "kprobe",
        /// The tracer printing every event as JSON.
        KprobeJson = "kprobe-json",
        Fentry = "fentry",
        /// The tutorial as written.
        Printk = "printk",
        /// Debian's bpftrace running the tutorial as a one-liner.
        Bpftrace = "bpftrace",
    }
}

named! {
    /// Why a tracer run failed: what the tracer says it could not do (with
    /// `--json`, its last stderr line is a [`crate::TracerError`]), or what
    /// the agent saw. Verdicts decide on this kind, never on message text.
    pub enum Failure {
        /// The kernel has no kprobes (CONFIG_KPROBES).
        NoKprobes = "no-kprobes",
        /// The kernel refused the BPF load (EPERM).
        PermissionDenied = "permission-denied",
        /// fentry/fexit cannot attach here: no BPF trampolines.
        NoTrampolines = "no-trampolines",
        /// A probe could not attach to the function.
        Attach = "attach",
        /// The BPF verifier rejected a program.
        Verifier = "verifier",
        /// The BPF object did not load for another reason.
        Load = "load",
        /// printk mode could not read or size the kernel's trace buffer.
        TracePipe = "trace-pipe",
        /// The ring buffer could not be mapped or read.
        RingBuffer = "ring-buffer",
        /// Anything else the tracer refused (an unknown function, unreadable BTF).
        Other = "other",
        /// The agent's: the tracer did not attach within its deadline.
        AttachTimeout = "attach-timeout",
        /// The agent's: the tracer exited before attaching without saying why.
        Silent = "silent",
    }
}

impl Failure {
    /// The kind in a few words, to lead a failure's detail.
    pub const fn describe(self) -> &'static str {
        match self {
            Failure::NoKprobes => "no kprobes",
            Failure::PermissionDenied => "BPF refused (EPERM)",
            Failure::NoTrampolines => "no BPF trampolines",
            Failure::Attach => "attach failure",
            Failure::Verifier => "BPF verifier rejection",
            Failure::Load => "BPF load failure",
            Failure::TracePipe => "trace_pipe failure",
            Failure::RingBuffer => "ring buffer failure",
            Failure::Other => "tracer error",
            Failure::AttachTimeout => "attach timeout",
            Failure::Silent => "tracer exit before attaching",
        }
    }
}

/// The names of every [`OverheadMode`], in report order (for the reports
/// and JSON maps keyed by mode name).
pub const OVERHEAD_MODE_NAMES: [&str; 9] = {
    let mut names = [""; 9];
    let mut i = 0;
    while i < names.len() {
        names[i] = OverheadMode::ALL[i].name();
        i += 1;
    }
    names
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_the_valid_ones() {
        for m in TracerMode::ALL {
            assert_eq!(TracerMode::parse(m.name()), Ok(*m));
            assert_eq!(serde_json::to_string(m).ok(), Some(format!("\"{m}\"")));
        }
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(*s));
        }
        for o in OverheadMode::ALL {
            assert_eq!(OverheadMode::parse(o.name()), Ok(*o));
        }
        let mut words = std::collections::BTreeSet::new();
        for f in Failure::ALL {
            assert_eq!(Failure::parse(f.name()), Ok(*f));
            assert!(!f.describe().is_empty());
            assert!(
                words.insert(f.describe()),
                "{f}: its words are another kind's"
            );
        }
        let e = TracerMode::parse("nope").unwrap_err();
        assert_eq!(
            e,
            "unknown TracerMode `nope`; valid: kprobe, fentry, printk, empty-kprobe, empty-kretprobe, empty-pair"
        );
        assert_eq!(Scenario::ALL.len(), 10);
    }
}
