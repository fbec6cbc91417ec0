//! Loading, attaching and draining the BPF side. Never prints: output goes
//! to the caller's sink as typed [`Output`] values.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{ErrorKind, Link, MapCore, OpenObject};
use thiserror::Error;

use crate::event::Event;
use crate::pair::Pairer;
use crate::ring::{wait_readable, Ring, RingError};
use crate::skel::{OpenUnlinkSkel, UnlinkSkel, UnlinkSkelBuilder};
use crate::target::Target;

const NO_ARG: u32 = 0xff;
/// The ring buffer's size in `bpf/unlink.bpf.c`.
const RINGBUF_DEFAULT_BYTES: u32 = 4 * 1024 * 1024;
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";
const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";
const TRACEFS_DIRS: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// How the unlink path is probed: the shared vocabulary's mode.
pub use unlink_schema::TracerMode as Mode;

/// What a session is asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub target: Target,
    /// Trace only this process (thread group id).
    pub pid: Option<u32>,
    /// Trace only threads of this command name (the kernel's comm, at most
    /// 15 bytes): filtered in the kernel, so the counters cover it alone.
    pub comm: Option<Vec<u8>>,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ringbuf_bytes: Option<u32>,
    /// printk mode: the kernel trace buffer's size per CPU, in KiB.
    pub trace_buffer_kib: Option<u32>,
    /// Return instances of the kretprobe: None, the tracer's default
    /// ([`unlink_schema::DEFAULT_MAXACTIVE`] through tracefs, or the
    /// kernel's default where tracefs refuses the entry); 0, the kernel's
    /// default (the perf kprobe PMU); N, N through tracefs.
    pub maxactive: Option<u32>,
}

/// What a session produces, lent to the caller's sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output<'a> {
    /// One unlink call (kprobe and fentry modes).
    Call(&'a Event),
    /// One line of trace_pipe (printk mode).
    TraceLine(&'a str),
}

pub use unlink_schema::Counters;

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("this kernel has no kprobes ({KPROBE_PMU} is missing): it needs CONFIG_KPROBES; try --mode fentry")]
    NoKprobes,
    #[error("the kernel refused to load the BPF program (EPERM): run as root (CAP_BPF and CAP_PERFMON); some hosts refuse BPF even to root")]
    PermissionDenied,
    #[error("fentry/fexit is not available for {symbol} on this kernel/arch ({detail}); use --mode kprobe")]
    NoTrampolines { symbol: String, detail: String },
    #[error("cannot attach {what} to {symbol}: {detail}")]
    Attach {
        what: &'static str,
        symbol: String,
        detail: String,
    },
    #[error("the BPF verifier rejected the program: {0}")]
    Verifier(String),
    #[error("cannot load the BPF program: {0}")]
    Load(String),
    #[error("trace_pipe: {0}")]
    TracePipe(String),
    #[error("ring buffer: {0}")]
    RingBuffer(#[from] RingError),
}

impl ProbeError {
    /// What kind of failure this is (the `--json` error object's `error`).
    pub fn kind(&self) -> unlink_schema::Failure {
        use unlink_schema::Failure;
        match self {
            ProbeError::NoKprobes => Failure::NoKprobes,
            ProbeError::PermissionDenied => Failure::PermissionDenied,
            ProbeError::NoTrampolines { .. } => Failure::NoTrampolines,
            ProbeError::Attach { .. } => Failure::Attach,
            ProbeError::Verifier(_) => Failure::Verifier,
            ProbeError::Load(_) => Failure::Load,
            ProbeError::TracePipe(_) => Failure::TracePipe,
            ProbeError::RingBuffer(_) => Failure::RingBuffer,
        }
    }
}

/// libbpf's messages of the current load, kept to explain a failure.
static LIBBPF_LOG: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn libbpf_log_clear() {
    if let Ok(mut log) = LIBBPF_LOG.lock() {
        log.clear();
    }
}

fn libbpf_log(_level: libbpf_rs::PrintLevel, msg: String) {
    if let Ok(mut log) = LIBBPF_LOG.lock() {
        log.push_str(&msg);
    }
}

/// Keeps libbpf's messages (warnings, or everything with `debug`) instead
/// of letting libbpf print them; [`take_libbpf_log`] hands them out.
pub fn capture_libbpf_log(debug: bool) {
    let level = if debug {
        libbpf_rs::PrintLevel::Debug
    } else {
        libbpf_rs::PrintLevel::Warn
    };
    libbpf_rs::set_print(Some((level, libbpf_log)));
}

/// libbpf's messages kept since the last call (the verifier log included).
pub fn take_libbpf_log() -> String {
    LIBBPF_LOG
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default()
}

/// The verifier's verdict: the last line of the log before its statistics.
pub fn verifier_reason(log: &str) -> Option<String> {
    let start = log.find("-- BEGIN PROG LOAD LOG --")?;
    let body = &log[start
        ..log[start..]
            .find("-- END PROG LOAD LOG --")
            .map_or(log.len(), |e| start + e)];
    body.lines()
        .rev()
        .map(str::trim)
        .find(|l| {
            !l.is_empty()
                && !l.starts_with("processed ")
                && !l.starts_with("--")
                && !l.starts_with("verification time")
        })
        .map(str::to_string)
}

fn load_error(e: libbpf_rs::Error) -> ProbeError {
    let log = LIBBPF_LOG.lock().map(|l| l.clone()).unwrap_or_default();
    if let Some(reason) = verifier_reason(&log) {
        return ProbeError::Verifier(reason);
    }
    match e.kind() {
        ErrorKind::PermissionDenied => ProbeError::PermissionDenied,
        _ => ProbeError::Load(format!("{e:#}")),
    }
}

/// The parameter layout the fentry/fexit programs are written for.
fn fentry_layout(t: &Target) -> bool {
    t.dfd_arg == Some(0) && t.name_arg == 1 && t.nr_args == 2
}

/// An attached probe set; dropping it detaches everything.
pub struct Session<'obj> {
    skel: UnlinkSkel<'obj>,
    links: Vec<Link>,
    mode: Mode,
    ring: Option<Ring>,
    pairer: Pairer,
    trace_pipe: Option<BufReader<File>>,
    /// After `links`: an entry is removed once its perf event is closed.
    tracefs_returns: Vec<crate::retprobe::TracefsReturnProbe>,
    return_probe: Option<unlink_schema::ReturnProbe>,
}

/// Storage the skeleton borrows for its lifetime.
pub type ObjectStorage = MaybeUninit<OpenObject>;

impl<'obj> Session<'obj> {
    /// Opens, configures, loads and attaches the programs of `cfg.mode`.
    pub fn start(cfg: &Config, storage: &'obj mut ObjectStorage) -> Result<Self, ProbeError> {
        if cfg.mode != Mode::Fentry && !Path::new(KPROBE_PMU).exists() {
            return Err(ProbeError::NoKprobes);
        }
        if cfg.mode == Mode::Fentry && !fentry_layout(&cfg.target) {
            return Err(ProbeError::NoTrampolines {
                symbol: cfg.target.symbol.clone(),
                detail: format!(
                    "fentry mode supports (int dfd, struct filename *name) only, the kernel has `{}`",
                    cfg.target.proto
                ),
            });
        }
        libbpf_log_clear();
        let builder = UnlinkSkelBuilder::default();
        let mut open = builder.open(storage).map_err(load_error)?;
        configure(&mut open, cfg)?;
        let skel = open.load().map_err(load_error)?;

        let mut session = Session {
            skel,
            links: Vec::new(),
            mode: cfg.mode,
            ring: None,
            pairer: Pairer::default(),
            trace_pipe: None,
            tracefs_returns: Vec::new(),
            return_probe: None,
        };
        // The trace buffer is sized before anything writes to it.
        let tracefs = match cfg.mode {
            Mode::Printk => {
                let dir = tracefs_dir()?;
                if let Some(kib) = cfg.trace_buffer_kib {
                    size_trace_buffer(&dir, kib)?;
                }
                Some(dir)
            }
            _ => None,
        };
        session.attach(&cfg.target.symbol, cfg.maxactive)?;
        match (cfg.mode, &tracefs) {
            (Mode::Kprobe | Mode::Fentry, _) => session.open_ring()?,
            (Mode::Printk, Some(dir)) => session.trace_pipe = Some(open_trace_pipe(dir)?),
            _ => {}
        }
        Ok(session)
    }

    /// The return probe as attached (modes with a kretprobe).
    pub fn return_probe(&self) -> Option<unlink_schema::ReturnProbe> {
        self.return_probe
    }

    fn attach(&mut self, symbol: &str, maxactive: Option<u32>) -> Result<(), ProbeError> {
        let progs = &self.skel.progs;
        let attach_err = |what: &'static str, e: libbpf_rs::Error| ProbeError::Attach {
            what,
            symbol: symbol.to_string(),
            detail: format!("{e:#}"),
        };
        let mut returns = Returns {
            symbol,
            maxactive,
            probes: &mut self.tracefs_returns,
            attached: None,
        };
        match self.mode {
            Mode::Kprobe => {
                self.links.push(
                    progs
                        .kprobe_unlink
                        .attach_kprobe(false, symbol)
                        .map_err(|e| attach_err("kprobe", e))?,
                );
                self.links.push(returns.attach(&progs.kretprobe_unlink)?);
            }
            Mode::Printk => {
                self.links.push(
                    progs
                        .printk_entry
                        .attach_kprobe(false, symbol)
                        .map_err(|e| attach_err("kprobe", e))?,
                );
                self.links.push(returns.attach(&progs.printk_exit)?);
            }
            Mode::EmptyKprobe | Mode::EmptyKretprobe | Mode::EmptyPair => {
                if self.mode != Mode::EmptyKretprobe {
                    self.links.push(
                        progs
                            .empty_kprobe
                            .attach_kprobe(false, symbol)
                            .map_err(|e| attach_err("kprobe", e))?,
                    );
                }
                if self.mode != Mode::EmptyKprobe {
                    self.links.push(returns.attach(&progs.empty_kretprobe)?);
                }
            }
            Mode::Fentry => {
                for prog in [&progs.fentry_unlink, &progs.fexit_unlink] {
                    let link = prog.attach().map_err(|e| ProbeError::NoTrampolines {
                        symbol: symbol.to_string(),
                        detail: format!("{e:#}"),
                    })?;
                    self.links.push(link);
                }
            }
        }
        self.return_probe = returns.attached;
        Ok(())
    }

    fn open_ring(&mut self) -> Result<(), ProbeError> {
        let events = &self.skel.maps.events;
        self.ring = Some(Ring::open(events.as_fd(), events.max_entries())?);
        Ok(())
    }

    /// Waits up to `timeout` for output and hands everything available to `sink`.
    pub fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(Output<'_>),
    ) -> Result<(), ProbeError> {
        if let Some(ring) = &mut self.ring {
            // The BPF side wakes us per batch: after the wait, drain
            // whatever is there, woken or not. Records are joined in place.
            ring.wait(timeout)?;
            let pairer = &mut self.pairer;
            ring.drain(|record| pairer.push(record, &mut |e| sink(Output::Call(e))))?;
        }
        if self.ring.is_none() && self.trace_pipe.is_none() {
            // Nothing to read (the empty modes): just wait.
            std::thread::sleep(timeout);
        }
        if let Some(pipe) = &mut self.trace_pipe {
            // A failed wait shows up in the read below.
            let _ = wait_readable(pipe.get_ref().as_fd(), timeout);
            let mut line = String::new();
            loop {
                line.clear();
                match pipe.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        let text = line.trim_end_matches('\n');
                        if !text.trim().is_empty() {
                            sink(Output::TraceLine(text));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => break,
                    Err(e) => return Err(ProbeError::TracePipe(e.to_string())),
                }
            }
        }
        Ok(())
    }

    /// The kernel-side counters now, joined with what pairing saw.
    pub fn counters(&self) -> Counters {
        let mut k = KernelCounters::default();
        if let Some(bss) = self.skel.maps.bss_data.as_deref() {
            // The BPF side updates these concurrently: read each once, volatile.
            let c = &bss.counters;
            // SAFETY: the fields are plain u64s in a live mmap'ed .bss.
            unsafe {
                k.entries = std::ptr::read_volatile(&c.entries);
                k.returns = std::ptr::read_volatile(&c.returns);
                k.lost_entries = std::ptr::read_volatile(&c.lost_entries);
                k.lost_returns = std::ptr::read_volatile(&c.lost_returns);
                k.returns_of_lost = std::ptr::read_volatile(&c.returns_of_lost);
                k.lost_untracked = std::ptr::read_volatile(&c.lost_untracked);
            }
        }
        join_counters(
            &k,
            &self.pairer.stats(),
            self.pairer.open_entries(),
            self.kernel_missed(),
        )
    }

    /// Run statistics of the attached programs, if the kernel keeps them
    /// (`/proc/sys/kernel/bpf_stats_enabled` is 1); empty otherwise.
    pub fn program_stats(&self) -> Vec<unlink_schema::ProgramStats> {
        let enabled = std::fs::read_to_string(BPF_STATS_SYSCTL)
            .map(|s| s.trim() == "1")
            .unwrap_or(false);
        if !enabled {
            return Vec::new();
        }
        let progs = &self.skel.progs;
        let mut out = Vec::new();
        for prog in [
            &progs.kprobe_unlink,
            &progs.kretprobe_unlink,
            &progs.fentry_unlink,
            &progs.fexit_unlink,
            &progs.printk_entry,
            &progs.printk_exit,
            &progs.empty_kprobe,
            &progs.empty_kretprobe,
        ] {
            let name = prog.name().to_string_lossy().into_owned();
            if !attached_programs(self.mode).contains(&name.as_str()) {
                continue;
            }
            let mut info = libbpf_sys::bpf_prog_info::default();
            let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
            // SAFETY: `info` is a plain struct of `len` bytes the kernel fills.
            let rc = unsafe {
                libbpf_sys::bpf_prog_get_info_by_fd(
                    std::os::fd::AsRawFd::as_raw_fd(&prog.as_fd()),
                    &mut info,
                    &mut len,
                )
            };
            if rc == 0 {
                out.push(unlink_schema::ProgramStats {
                    name,
                    run_cnt: info.run_cnt,
                    run_time_ns: info.run_time_ns,
                });
            }
        }
        out
    }

    /// Sum of the kprobe links' `missed` counts, where the kernel reports them.
    fn kernel_missed(&self) -> Option<u64> {
        if self.mode == Mode::Fentry || !kernel_reports_missed() {
            return None;
        }
        let mut total = 0;
        for link in &self.links {
            let info = link.info().ok()?;
            if let libbpf_rs::query::LinkTypeInfo::PerfEvent(pe) = info.info {
                if let libbpf_rs::query::PerfEventType::Kprobe { missed, .. } = pe.event_type {
                    total += missed;
                }
            }
        }
        Some(total)
    }
}

/// `struct unlink_counters` of `bpf/unlink.h`, as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub entries: u64,
    pub returns: u64,
    pub lost_entries: u64,
    pub lost_returns: u64,
    pub returns_of_lost: u64,
    pub lost_untracked: u64,
}

/// The summary's counters from the kernel's and from pairing:
/// - a call is `dropped` when one of its records was lost (a return whose
///   entry record was lost sends none; a lost return record leaves its
///   entry open);
/// - `returns` are the return probes that found their entry (delivered or
///   known lost), so `events + dropped == returns` unless records went
///   missing between the ring and the pairing;
/// - `inflight` are entries whose return never came: open or superseded
///   entries (less those whose return record was lost), and lost entries
///   no return asked about (less those whose return came unpaired).
pub fn join_counters(
    k: &KernelCounters,
    p: &crate::pair::PairStats,
    open_entries: u64,
    kernel_missed: Option<u64>,
) -> Counters {
    Counters {
        entries: k.entries,
        returns: k.returns.saturating_sub(p.unpaired_returns),
        events: p.events,
        dropped: k.lost_returns + k.returns_of_lost,
        unpaired_returns: p.unpaired_returns,
        inflight: (p.superseded + open_entries).saturating_sub(k.lost_returns)
            + k.lost_entries
                .saturating_sub(k.returns_of_lost)
                .saturating_sub(k.lost_untracked),
        lost_untracked: k.lost_untracked,
        kernel_missed,
        decode_errors: p.decode_errors,
    }
}

fn configure(open: &mut OpenUnlinkSkel<'_>, cfg: &Config) -> Result<(), ProbeError> {
    let t = &cfg.target;
    let rodata = open
        .maps
        .rodata_data
        .as_deref_mut()
        .ok_or_else(|| ProbeError::Load("the BPF object has no .rodata".into()))?;
    rodata.filter_tgid = cfg.pid.unwrap_or(0);
    if let Some(comm) = &cfg.comm {
        if comm.is_empty() || comm.len() >= rodata.filter_comm.len() {
            return Err(ProbeError::Load(format!(
                "--comm must be 1 to {} bytes (the kernel's comm)",
                rodata.filter_comm.len() - 1
            )));
        }
        for (dst, &b) in rodata.filter_comm.iter_mut().zip(comm) {
            *dst = b as _;
        }
    }
    rodata.ret_is_int = t.ret_is_int;
    rodata.dfd_arg = t.dfd_arg.unwrap_or(NO_ARG);
    rodata.name_arg = t.name_arg;
    // A quarter of the ring: the consumer is woken well before it is full.
    rodata.wakeup_bytes = u64::from(cfg.ringbuf_bytes.unwrap_or(RINGBUF_DEFAULT_BYTES) / 4);

    if let Some(bytes) = cfg.ringbuf_bytes {
        open.maps
            .events
            .set_max_entries(bytes)
            .map_err(|e| ProbeError::Load(format!("ring buffer size {bytes}: {e:#}")))?;
    }

    let progs = &mut open.progs;
    let wanted = attached_programs(cfg.mode);
    for prog in [
        &mut progs.kprobe_unlink,
        &mut progs.kretprobe_unlink,
        &mut progs.fentry_unlink,
        &mut progs.fexit_unlink,
        &mut progs.printk_entry,
        &mut progs.printk_exit,
        &mut progs.empty_kprobe,
        &mut progs.empty_kretprobe,
    ] {
        let name = prog.name().to_string_lossy().into_owned();
        prog.set_autoload(wanted.contains(&name.as_str()));
    }
    if cfg.mode == Mode::Fentry {
        for prog in [&mut progs.fentry_unlink, &mut progs.fexit_unlink] {
            prog.set_attach_target(0, Some(t.symbol.clone()))
                .map_err(|e| ProbeError::Load(format!("fentry target {}: {e:#}", t.symbol)))?;
        }
    }
    Ok(())
}

/// The BPF programs a mode loads and attaches.
fn attached_programs(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::Kprobe => &["kprobe_unlink", "kretprobe_unlink"],
        Mode::Fentry => &["fentry_unlink", "fexit_unlink"],
        Mode::Printk => &["printk_entry", "printk_exit"],
        Mode::EmptyKprobe => &["empty_kprobe"],
        Mode::EmptyKretprobe => &["empty_kretprobe"],
        Mode::EmptyPair => &["empty_kprobe", "empty_kretprobe"],
    }
}

/// Attaches a session's return probes as `--maxactive` asks, and
/// remembers how.
struct Returns<'a> {
    symbol: &'a str,
    maxactive: Option<u32>,
    probes: &'a mut Vec<crate::retprobe::TracefsReturnProbe>,
    attached: Option<unlink_schema::ReturnProbe>,
}

impl Returns<'_> {
    fn attach(&mut self, prog: &libbpf_rs::ProgramMut<'_>) -> Result<Link, ProbeError> {
        use unlink_schema::{ReturnAttach, ReturnProbe, DEFAULT_MAXACTIVE};
        let err = |detail: String| ProbeError::Attach {
            what: "kretprobe",
            symbol: self.symbol.to_string(),
            detail,
        };
        let asked = self.maxactive.unwrap_or(DEFAULT_MAXACTIVE);
        if asked > 0 {
            match self.tracefs(prog, asked) {
                Ok(link) => {
                    self.attached = Some(ReturnProbe {
                        via: ReturnAttach::Tracefs,
                        maxactive: asked,
                    });
                    return Ok(link);
                }
                // Asked for: its failure is the run's.
                Err(e) if self.maxactive.is_some() => return Err(err(e)),
                // The default where tracefs refuses the entry (no write
                // access to it: CAP_PERFMON without root): the kernel's
                // instances, as the summary then says.
                Err(_) => {}
            }
        }
        let link = prog
            .attach_kprobe(true, self.symbol)
            .map_err(|e| err(format!("{e:#}")))?;
        self.attached = Some(ReturnProbe {
            via: ReturnAttach::Perf,
            maxactive: 0,
        });
        Ok(link)
    }

    fn tracefs(
        &mut self,
        prog: &libbpf_rs::ProgramMut<'_>,
        maxactive: u32,
    ) -> Result<Link, String> {
        use std::os::fd::{AsRawFd, IntoRawFd};
        let dir = tracefs_dir().map_err(|e| e.to_string())?;
        let (probe, fd) = crate::retprobe::TracefsReturnProbe::create(
            &dir,
            maxactive,
            self.symbol,
            self.probes.len(),
        )?;
        // Dropped after the link that closes the perf event: the entry is
        // then removed.
        self.probes.push(probe);
        let link = prog
            .attach_perf_event(fd.as_raw_fd())
            .map_err(|e| format!("attaching to the tracefs kretprobe: {e:#}"))?;
        // libbpf owns the perf event's fd from here and closes it with the link.
        let _ = fd.into_raw_fd();
        Ok(link)
    }
}

/// The tracefs directory, mounting tracefs if nothing is mounted.
fn tracefs_dir() -> Result<std::path::PathBuf, ProbeError> {
    let find = || {
        TRACEFS_DIRS
            .iter()
            .map(Path::new)
            .find(|d| d.join("trace_pipe").exists())
            .map(Path::to_path_buf)
    };
    if let Some(d) = find() {
        return Ok(d);
    }
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS_DIRS[0],
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| ProbeError::TracePipe(format!("tracefs not mounted and mount failed: {e}")))?;
    find().ok_or_else(|| ProbeError::TracePipe("no trace_pipe after mounting tracefs".into()))
}

/// Sets the kernel's trace buffer to `kib` KiB per CPU.
fn size_trace_buffer(dir: &Path, kib: u32) -> Result<(), ProbeError> {
    let path = dir.join("buffer_size_kb");
    std::fs::write(&path, kib.to_string())
        .map_err(|e| ProbeError::TracePipe(format!("{} = {kib}: {e}", path.display())))
}

/// Opens trace_pipe non-blocking.
fn open_trace_pipe(dir: &Path) -> Result<BufReader<File>, ProbeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("trace_pipe");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&path)
        .map_err(|e| ProbeError::TracePipe(format!("{}: {e}", path.display())))?;
    Ok(BufReader::new(file))
}

/// BPF link info carries kprobe `missed` counts from Linux 6.7.
fn kernel_reports_missed() -> bool {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| unlink_schema::release_version(&u.release().to_string_lossy()))
        .is_some_and(|v| v >= (6, 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_reasons() {
        let log = "prog 'x': BPF program load failed: -EACCES\n-- BEGIN PROG LOAD LOG --\n0: R1=ctx\n20: (79) r9 = *(u64 *)(r2 +0)\n\
                   dereference of modified ctx ptr R2 off=112 disallowed\nprocessed 10 insns (limit 1000000)\n-- END PROG LOAD LOG --\n";
        assert_eq!(
            verifier_reason(log).as_deref(),
            Some("dereference of modified ctx ptr R2 off=112 disallowed")
        );
        assert_eq!(verifier_reason("no log"), None);
    }

    #[test]
    fn counters_join_the_kernels_and_the_pairings() {
        use crate::pair::PairStats;
        let k = |entries, returns, lost_returns, returns_of_lost| KernelCounters {
            entries,
            returns,
            lost_entries: returns_of_lost,
            lost_returns,
            returns_of_lost,
            lost_untracked: 0,
        };
        let lost_and_missed = KernelCounters {
            lost_entries: 3,
            ..k(10, 8, 0, 1)
        };
        let p = |events, unpaired_returns, superseded| PairStats {
            events,
            unpaired_returns,
            superseded,
            decode_errors: 0,
        };
        // (case, kernel, pairing, open entries) -> (returns, events, dropped, unpaired, inflight)
        let cases = [
            (
                "every record arrived",
                k(10, 10, 0, 0),
                p(10, 0, 0),
                0,
                (10, 10, 0, 0, 0),
            ),
            (
                "a full ring lost 2 entries and 3 returns",
                k(10, 10, 3, 2),
                p(5, 0, 3),
                0,
                (10, 5, 5, 0, 0),
            ),
            (
                "the kernel missed 4 returns",
                k(10, 6, 0, 0),
                p(6, 0, 3),
                1,
                (6, 6, 0, 0, 4),
            ),
            (
                "3 entries lost, 2 of them never returned",
                lost_and_missed,
                p(7, 0, 0),
                0,
                (8, 7, 1, 0, 2),
            ),
            (
                "a return on a thread with no entry",
                k(10, 11, 0, 0),
                p(10, 1, 0),
                0,
                (10, 10, 0, 1, 0),
            ),
        ];
        for (name, kc, pc, open, want) in cases {
            let c = join_counters(&kc, &pc, open, None);
            assert_eq!(
                (
                    c.returns,
                    c.events,
                    c.dropped,
                    c.unpaired_returns,
                    c.inflight
                ),
                want,
                "{name}"
            );
            assert_eq!(c.entries, kc.entries, "{name}");
        }
    }
}
