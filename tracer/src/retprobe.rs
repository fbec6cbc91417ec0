//! A kretprobe with return instances of its own (`--maxactive`).
//!
//! The perf kprobe PMU, which libbpf attaches through, gives a kretprobe
//! the kernel's default instances: NR_CPUS on a non-preemptible kernel
//! before 6.2, so on such a kernel more calls inside the function than
//! CPUs miss their returns. A `kprobe_events` entry of tracefs takes the
//! count (`r1024:GROUP/EVENT SYMBOL`); its perf event (a tracepoint) then
//! carries the BPF program. The entry is removed when the probe is
//! dropped, and entries of tracers that died without removing theirs are
//! removed at the next start.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// The tracefs group of the tracer's return probes.
pub const GROUP: &str = unlink_schema::RETPROBE_GROUP;

/// The `kprobe_events` line that creates the event (pure).
pub fn create_line(maxactive: u32, event: &str, symbol: &str) -> String {
    format!("r{maxactive}:{GROUP}/{event} {symbol}")
}

/// The `kprobe_events` line that removes it (pure).
pub fn remove_line(event: &str) -> String {
    format!("-:{GROUP}/{event}")
}

/// This process's event name for its `n`th return probe (pure).
pub fn event_name(pid: u32, n: usize) -> String {
    format!("ret_{pid}_{n}")
}

/// The events of `kprobe_events` (its text) that belong to tracers no
/// longer alive (`alive(pid)` false), by name (pure).
pub fn stale_events(kprobe_events: &str, alive: &dyn Fn(u32) -> bool) -> Vec<String> {
    let prefix = format!(":{GROUP}/ret_");
    kprobe_events
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let rest = &name[name.find(&prefix)? + prefix.len()..];
            let pid: u32 = rest.split('_').next()?.parse().ok()?;
            (!alive(pid)).then(|| format!("ret_{rest}"))
        })
        .collect()
}

/// A tracefs kretprobe and its perf event: the event is removed on drop
/// (after whatever holds the perf event closed it).
#[derive(Debug)]
pub struct TracefsReturnProbe {
    dir: PathBuf,
    event: String,
}

impl TracefsReturnProbe {
    /// Creates `rMAXACTIVE:unlink_tracer/EVENT SYMBOL` in the tracefs at
    /// `dir` (first removing the entries of dead tracers) and opens its
    /// perf event: the probe and the event's fd, for a BPF program.
    pub fn create(
        dir: &Path,
        maxactive: u32,
        symbol: &str,
        n: usize,
    ) -> Result<(Self, OwnedFd), String> {
        let events = dir.join("kprobe_events");
        if let Ok(text) = std::fs::read_to_string(&events) {
            for stale in stale_events(&text, &|pid| Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = append(&events, &remove_line(&stale));
            }
        }
        let event = event_name(std::process::id(), n);
        append(&events, &create_line(maxactive, &event, symbol)).map_err(|e| {
            format!(
                "{}: `{}`: {e}",
                events.display(),
                create_line(maxactive, &event, symbol)
            )
        })?;
        let probe = TracefsReturnProbe {
            dir: dir.to_path_buf(),
            event,
        };
        let id_path = dir.join("events").join(GROUP).join(&probe.event).join("id");
        let id: u64 = std::fs::read_to_string(&id_path)
            .map_err(|e| format!("{}: {e}", id_path.display()))?
            .trim()
            .parse()
            .map_err(|e| format!("{}: {e}", id_path.display()))?;
        let fd =
            open_tracepoint(id).map_err(|e| format!("perf_event_open of {}: {e}", probe.event))?;
        Ok((probe, fd))
    }
}

impl Drop for TracefsReturnProbe {
    fn drop(&mut self) {
        let _ = append(&self.dir.join("kprobe_events"), &remove_line(&self.event));
    }
}

/// Appends one line to `kprobe_events` (never truncating it: that would
/// remove every other tool's probes).
fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(path)?;
    f.write_all(format!("{line}\n").as_bytes())
}

/// `struct perf_event_attr` up to `config1` (PERF_ATTR_SIZE_VER0 is 64
/// bytes; the kernel takes any size it knows).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: nix::libc::c_ulong = 1 << 3;

/// Opens the tracepoint `id` as a perf event on CPU 0 for every process
/// (a kprobe's BPF program runs on every CPU whatever the event's CPU).
fn open_tracepoint(id: u64) -> std::io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: id,
        sample_period: 1,
        wakeup_events: 1,
        ..Default::default()
    };
    // SAFETY: a valid attr of the size it says; the fd returned is ours.
    let fd = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1 as nix::libc::pid_t,
            0 as nix::libc::c_int,
            -1 as nix::libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_group_and_the_event() {
        assert_eq!(
            create_line(1024, "ret_7_0", "do_unlinkat"),
            "r1024:unlink_tracer/ret_7_0 do_unlinkat"
        );
        assert_eq!(remove_line("ret_7_0"), "-:unlink_tracer/ret_7_0");
        assert_eq!(event_name(7, 1), "ret_7_1");
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 64);
    }

    #[test]
    fn only_dead_tracers_events_are_stale() {
        // As the kernel lists them: `r1024:GROUP/EVENT SYMBOL`; others' too.
        let text = "r1024:unlink_tracer/ret_7_0 do_unlinkat\n\
                    r1024:unlink_tracer/ret_8_1 do_unlinkat\n\
                    r:kprobes/ret_9_0 do_unlinkat\n\
                    p:unlink_tracer/entry_9 do_unlinkat\n\
                    r16:unlink_tracer/ret_x_0 do_unlinkat\n";
        assert_eq!(stale_events(text, &|pid| pid == 8), ["ret_7_0"]);
        assert_eq!(stale_events(text, &|_| true), Vec::<String>::new());
        assert_eq!(
            stale_events(text, &|_| false),
            ["ret_7_0", "ret_8_1"],
            "another group's event and a foreign name are never touched"
        );
    }
}
