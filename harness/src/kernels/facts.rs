//! What a kernel can do, read from the kernel itself: its build config
//! and its release (parsed by the workspace's one parser,
//! `unlink_schema::release_version`); there are no version tables (see ARCHITECTURE.md).

use super::kernel::KernelImage;

impl KernelImage {
    /// Whether the kernel's config sets `option` (`=y`); None when the
    /// config is unknown.
    pub fn config_enabled(&self, option: &str) -> Option<bool> {
        let text = std::fs::read_to_string(self.config.as_ref()?).ok()?;
        Some(config_has(&text, option))
    }
}

/// Whether a kernel config text sets `option=y`.
pub fn config_has(text: &str, option: &str) -> bool {
    text.lines()
        .any(|l| l.strip_prefix(option).is_some_and(|rest| rest == "=y"))
}

/// What the kernel says about fentry/fexit, from its config: BPF
/// trampolines attach to kernel functions only with ftrace direct calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FentryExpectation {
    Available,
    Unavailable,
    /// No config to read (a custom image): fentry must work.
    Unknown,
}

pub const DIRECT_CALLS: &str = "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS";

pub fn fentry_expectation(img: &KernelImage) -> FentryExpectation {
    match img.config_enabled(DIRECT_CALLS) {
        Some(true) => FentryExpectation::Available,
        Some(false) => FentryExpectation::Unavailable,
        None => FentryExpectation::Unknown,
    }
}

/// Whether the kernel reports a kprobe link's missed hits (BPF link info
/// `missed`, Linux 6.7+): the tracer's summary must carry
/// `kernel_missed` exactly there. None when the release does not parse.
pub fn reports_missed(release: &str) -> Option<bool> {
    unlink_schema::release_version(release).map(|v| v >= (6, 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_that_report_missed_hits() {
        let cases = [
            ("5.10.0-32-amd64", Some(false)),
            ("6.6.9-amd64", Some(false)),
            ("6.7.0-rc1-amd64", Some(true)),
            ("7.2.13+deb14-amd64", Some(true)),
            ("garbage", None),
        ];
        for (rel, want) in cases {
            assert_eq!(reports_missed(rel), want, "{rel}");
        }
    }

    #[test]
    fn config_options() {
        let text = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_AB=y\nCONFIG_C=m\n";
        let cases = [
            ("CONFIG_A", true),
            ("CONFIG_B", false),
            ("CONFIG_C", false),
            ("CONFIG_D", false),
        ];
        for (opt, want) in cases {
            assert_eq!(config_has(text, opt), want, "{opt}");
        }
    }
}
