//! The oracle: the kernel's own kprobe tracer (tracefs `kprobe_events`),
//! an entry probe with the filename and a return probe with the return
//! value on the same function, recorded in a tracing instance of its own
//! while the BPF tracer runs. The host compares the two.
//!
//! Each line carries the task's tid (and, with `options/record-tgid`, its
//! tgid), the comm at the probe (`$comm`) and the event's timestamp on
//! `trace_clock` `mono`, so the entry→return interval can be set beside the
//! tracer's `latency_ns`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

const GROUP: &str = "unlink_oracle";

fn tracefs() -> Result<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("kprobe_events").exists())
        .context("no tracefs with kprobe_events in the guest")
}

/// The kernel's list of kprobe events now (`kprobe_events`), copied to
/// `to`: where the tracer's return probe shows with its instances.
pub fn copy_kprobe_events(to: &Path) -> Result<()> {
    fs::write(to, kprobe_events()?).with_context(|| format!("writing {}", to.display()))
}

/// The kernel's list of kprobe events now (`kprobe_events`).
pub fn kprobe_events() -> Result<String> {
    fs::read_to_string(tracefs()?.join("kprobe_events")).context("reading kprobe_events")
}

/// The top-level trace buffer's size per CPU in KiB (`buffer_size_kb`:
/// `2048`, or `2048 (expanded: 1408)` before first use).
pub fn trace_buffer_kib() -> Option<u32> {
    let text = fs::read_to_string(tracefs().ok()?.join("buffer_size_kb")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The traced function, chosen independently of the BPF tracer: the first
/// unlink-path candidate the kernel can probe.
pub fn symbol() -> Result<String> {
    let funcs = fs::read_to_string(tracefs()?.join("available_filter_functions"))
        .context("reading available_filter_functions")?;
    ["do_unlinkat", "filename_unlinkat"]
        .into_iter()
        .find(|f| {
            funcs
                .lines()
                .any(|l| l.split_whitespace().next() == Some(*f))
        })
        .map(str::to_string)
        .context("neither do_unlinkat nor filename_unlinkat is probeable")
}

/// The probe definitions (pure): `$arg1` is the dfd, `$arg2` the
/// `struct filename *` whose first member is the name pointer; the comm
/// goes before the name, whose text may hold anything.
pub fn definitions(symbol: &str) -> [String; 2] {
    [
        format!("p:{GROUP}/entry {symbol} dfd=$arg1:s32 comm=$comm name=+0(+0($arg2)):string"),
        format!("r:{GROUP}/exit {symbol} ret=$retval:s32"),
    ]
}

fn append(file: &Path, line: &str) -> Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    writeln!(f, "{line}").with_context(|| format!("writing `{line}` to {}", file.display()))
}

/// An armed oracle; [`Oracle::finish`] collects its trace and removes it.
pub struct Oracle {
    root: PathBuf,
    instance: PathBuf,
}

impl Oracle {
    pub fn start(symbol: &str) -> Result<Self> {
        let root = tracefs()?;
        let events = root.join("kprobe_events");
        for def in definitions(symbol) {
            append(&events, &def)?;
        }
        let instance = root.join("instances").join(GROUP);
        if !instance.exists() {
            fs::create_dir(&instance)
                .with_context(|| format!("creating {}", instance.display()))?;
        }
        fs::write(instance.join("buffer_size_kb"), "4096").context("sizing the oracle's buffer")?;
        // The tracer's clock (bpf_ktime_get_ns), and the thread group of
        // every line.
        fs::write(instance.join("trace_clock"), "mono").context("setting the oracle's clock")?;
        fs::write(instance.join("options").join("record-tgid"), "1")
            .context("setting options/record-tgid")?;
        fs::write(instance.join("events").join(GROUP).join("enable"), "1")
            .context("enabling the oracle's probes")?;
        Ok(Oracle { root, instance })
    }

    /// Stops recording, returns the instance's trace text, removes the probes.
    pub fn finish(self) -> Result<String> {
        let _ = fs::write(self.instance.join("events").join(GROUP).join("enable"), "0");
        let text =
            fs::read_to_string(self.instance.join("trace")).context("reading the oracle's trace");
        let _ = fs::remove_dir(&self.instance);
        let events = self.root.join("kprobe_events");
        let _ = append(&events, &format!("-:{GROUP}/entry"));
        let _ = append(&events, &format!("-:{GROUP}/exit"));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_definitions() {
        let [entry, exit] = definitions("filename_unlinkat");
        assert_eq!(
            entry,
            "p:unlink_oracle/entry filename_unlinkat dfd=$arg1:s32 comm=$comm name=+0(+0($arg2)):string"
        );
        assert_eq!(
            exit,
            "r:unlink_oracle/exit filename_unlinkat ret=$retval:s32"
        );
    }
}
