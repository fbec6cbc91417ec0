//! Verdicts of the options scenario: each tracer option that changes what
//! is reported, and the text output, judged against the calls the agent
//! and the second process recorded themselves. Pure over parsed files.

use unlink_schema::Failure;
use unlink_schema::{
    CliRun, JsonEvent, OptionProbe, OptionTracer, OptionsRun, Step, Summary, TargetInfo,
};

use super::fields::{self, Resolution};
use super::text;

/// How late a `--duration` tracer may exit: its loop looks at the clock
/// between polls of at most 100 ms, then drains and writes the summary.
/// The agent bounds the interval from both sides (see `OptionTracer`), so
/// its own delays cannot fail a tracer. The tracer's own lateness (its poll,
/// the summary, detaching its probes under TCG) was 0.12-0.61 s over the
/// 10 cells; 1.5 s covers that with room and still tells a tracer that
/// stops at 3x its 1 s duration apart.
pub const DURATION_SLACK_S: f64 = 1.5;

/// One tracer's files, parsed.
#[derive(Debug, Clone, Default)]
pub struct ProbeOutput {
    /// JSON events (or text lines parsed back) in output order.
    pub events: Vec<JsonEvent>,
    pub summary: Option<Summary>,
}

/// Everything one options run produced.
#[derive(Debug, Clone)]
pub struct OptionsInput<'a> {
    pub run: &'a OptionsRun,
    /// The agent's calls, then the other process's.
    pub steps: &'a [Step],
    pub symbol: &'a str,
    /// Whether the kernel reports kprobe links' missed hits (6.7+); None
    /// where its release does not say.
    pub reports_missed: Option<bool>,
}

impl OptionsInput<'_> {
    fn tracer(&self, p: OptionProbe) -> Result<&OptionTracer, String> {
        self.run
            .tracers
            .iter()
            .find(|t| t.probe == p)
            .ok_or_else(|| format!("no {} tracer in the run", p.name()))
    }

    fn mine(&self) -> Vec<Step> {
        self.of(self.run.pid)
    }

    fn theirs(&self) -> Vec<Step> {
        self.of(self.run.other_pid)
    }

    fn of(&self, pid: u32) -> Vec<Step> {
        self.steps
            .iter()
            .filter(|s| s.pid == pid)
            .cloned()
            .collect()
    }

    /// The two processes' calls overlapped in time: the filters had
    /// something to leave out.
    fn concurrent(&self) -> Result<(), String> {
        let span = |v: &[Step]| -> Option<(u64, u64)> {
            Some((
                v.iter().map(|s| s.start_ns).min()?,
                v.iter().map(|s| s.end_ns).max()?,
            ))
        };
        let (a, b) = (self.mine(), self.theirs());
        match (span(&a), span(&b)) {
            (Some(x), Some(y)) if x.0 < y.1 && y.0 < x.1 => Ok(()),
            _ => Err(format!(
                "the two processes did not unlink at the same time ({} and {} calls): nothing for the filter to leave out",
                a.len(),
                b.len()
            )),
        }
    }
}

fn exited_cleanly(t: &OptionTracer, by_itself: bool) -> Result<(), String> {
    let name = t.probe.name();
    if t.exit_code != Some(0) {
        return Err(format!(
            "the {name} tracer exited with {:?}; see {name}.err",
            t.exit_code
        ));
    }
    if t.exited_by_itself != by_itself {
        return Err(if by_itself {
            format!("the {name} tracer did not stop by itself: the agent had to stop it")
        } else {
            format!(
                "the {name} tracer stopped by itself {:.2}s after attaching",
                t.ready_to_exit_s
            )
        });
    }
    Ok(())
}

fn summary<'a>(t: &OptionTracer, o: &'a ProbeOutput) -> Result<&'a Summary, String> {
    o.summary
        .as_ref()
        .ok_or_else(|| format!("the {} tracer wrote no summary", t.probe.name()))
}

/// `--pid AGENT`: only the agent's calls, every one of them right, and the
/// kernel-side counters count the agent alone.
pub fn check_pid(i: &OptionsInput, o: &ProbeOutput) -> Result<String, String> {
    let t = i.tracer(OptionProbe::Pid)?;
    exited_cleanly(t, false)?;
    i.concurrent()?;
    filtered("--pid", i, o, &i.mine(), |e| e.pid == i.run.pid, t)
}

/// `--comm OTHER`: only the other process's calls, every one right, and
/// the counters count it alone.
pub fn check_comm(i: &OptionsInput, o: &ProbeOutput) -> Result<String, String> {
    let t = i.tracer(OptionProbe::Comm)?;
    exited_cleanly(t, false)?;
    i.concurrent()?;
    // Every thread whose comm is the chosen one, in whichever process;
    // none whose comm only starts like it, or that it only starts with.
    let chosen: Vec<Step> = i
        .steps
        .iter()
        .filter(|s| s.comm == i.run.other_comm)
        .cloned()
        .collect();
    let near: Vec<&Step> = i
        .steps
        .iter()
        .filter(|s| {
            s.comm != i.run.other_comm
                && (s.comm.starts_with(&i.run.other_comm) || i.run.other_comm.starts_with(&s.comm))
        })
        .collect();
    let pids: std::collections::BTreeSet<u32> = chosen.iter().map(|s| s.pid).collect();
    if pids.len() < 2 || near.len() < 2 {
        return Err(format!(
            "--comm: the workload had {} processes named `{}` and {} calls by names that almost match: nothing to tell apart",
            pids.len(),
            i.run.other_comm,
            near.len()
        ));
    }
    filtered("--comm", i, o, &chosen, |e| e.comm == i.run.other_comm, t)
}

fn filtered(
    opt: &str,
    i: &OptionsInput,
    o: &ProbeOutput,
    chosen: &[Step],
    keep: impl Fn(&JsonEvent) -> bool,
    t: &OptionTracer,
) -> Result<String, String> {
    if let Some(e) = o.events.iter().find(|e| !keep(e)) {
        return Err(format!(
            "{opt}: reported a call it should have left out: `{}` by pid {} ({:?})",
            e.filename, e.pid, e.comm
        ));
    }
    let n = fields::check_run(chosen, &o.events, i.symbol, Resolution::default())
        .map_err(|e| format!("{opt}: {e}"))?;
    if o.events.len() != n {
        return Err(format!(
            "{opt}: {} events for the chosen process's {n} calls",
            o.events.len()
        ));
    }
    let s = summary(t, o)?;
    let c = &s.counters;
    if c.entries != n as u64 || c.returns != n as u64 {
        return Err(format!(
            "{opt}: the kernel-side counters say {} entries and {} returns; the chosen process made {n} calls (the filter is not applied in the kernel)",
            c.entries, c.returns
        ));
    }
    Ok(format!(
        "{n} calls of the chosen process, none of the other's {}; kernel counters {n}",
        i.steps.len() - n
    ))
}

/// `--count N`: exactly the first N calls, then it stops by itself and
/// says so.
pub fn check_count(i: &OptionsInput, o: &ProbeOutput) -> Result<String, String> {
    let t = i.tracer(OptionProbe::Count)?;
    exited_cleanly(t, true)?;
    let n = i.run.count as usize;
    let mine = i.mine();
    if mine.len() <= n {
        return Err(format!(
            "the agent made {} calls: --count {n} had nothing to cut",
            mine.len()
        ));
    }
    if o.events.len() != n {
        return Err(format!("--count {n}: {} events reported", o.events.len()));
    }
    let first: Vec<Step> = mine.into_iter().take(n).collect();
    fields::check_run(&first, &o.events, i.symbol, Resolution::default())
        .map_err(|e| format!("--count {n}: the first {n} calls: {e}"))?;
    let s = summary(t, o)?;
    if s.stopped_by != "count" || s.printed != n as u64 {
        return Err(format!(
            "--count {n}: the summary says stopped by `{}` after {} lines",
            s.stopped_by, s.printed
        ));
    }
    Ok(format!(
        "stopped by itself after exactly the first {n} calls"
    ))
}

/// `--duration S`: stops by itself S seconds after attaching (within
/// [`DURATION_SLACK_S`]), with its summary.
pub fn check_duration(i: &OptionsInput, o: &ProbeOutput) -> Result<String, String> {
    let t = i.tracer(OptionProbe::Duration)?;
    exited_cleanly(t, true)?;
    let d = i.run.duration_s;
    // The ready file is written before the tracer's clock starts: it must
    // not exit before `d` (at most the interval can be) nor after
    // `d + slack` (at least the interval was).
    if t.ready_to_exit_max_s < d || t.ready_to_exit_min_s > d + DURATION_SLACK_S {
        return Err(format!(
            "--duration {d}: exited {:.2}-{:.2}s after attaching",
            t.ready_to_exit_min_s, t.ready_to_exit_max_s
        ));
    }
    let s = summary(t, o)?;
    if s.stopped_by != "duration" {
        return Err(format!(
            "--duration {d}: the summary says stopped by `{}`",
            s.stopped_by
        ));
    }
    // What it reported in its window is right, field by field.
    let mut checked = 0;
    for e in &o.events {
        if let Some(step) = i
            .steps
            .iter()
            .find(|s| s.tid == e.tid && s.path == e.filename)
        {
            fields::check_event(e, step, i.symbol, Resolution::default())
                .map_err(|err| format!("--duration {d}: {err}"))?;
            checked += 1;
        }
    }
    Ok(format!(
        "stopped by itself {:.2}-{:.2}s after attaching, summary written ({checked} workload calls checked)",
        t.ready_to_exit_min_s, t.ready_to_exit_max_s
    ))
}

/// libbpf's debug messages of one load are hundreds of lines (628 in a
/// bookworm guest): fewer than this is not the load's log.
const VERBOSE_LOAD_LINES: usize = 20;

/// What a `--json` run of the cli runs must be refused as: its kind and the
/// argument its message must name (pure).
fn json_refusal(args: &[String]) -> Option<(Failure, &str)> {
    let after = |opt: &str| {
        args.iter()
            .position(|a| a == opt)
            .and_then(|p| args.get(p + 1))
            .map(String::as_str)
    };
    if let Some(size) = after("--trace-buffer-kib") {
        return Some((Failure::TracePipe, size));
    }
    after("--symbol").map(|name| (Failure::Other, name))
}

/// The tracer's runs that trace nothing (pure). `--show-target`: exit 0,
/// its symbol tracefs's, its prototype (`s32 (s32 dfd, struct filename *
/// name)`) agreeing with its own fields — the return type with
/// `ret_is_int`, the parameter at `name_arg` the `struct filename *`, the
/// one at `dfd_arg` the `dfd` — and `ret_is_int` with the width the traced
/// runs proved (`ret_width_bits`, from a summary whose ENOENTs `ret-width`
/// checked). Every bad argument: exit 2, the option named on stderr.
pub fn check_cli(i: &OptionsInput, ret_width_bits: Option<u32>) -> Result<String, String> {
    let runs = &i.run.cli;
    if let Some(r) = runs.iter().find(|r| r.killed) {
        return Err(format!(
            "cli: `{}` had not exited after {} s and was killed: {}",
            r.args.join(" "),
            unlink_schema::protocol::CLI_RUN_LIMIT_S,
            r.stderr.lines().next().unwrap_or("it said nothing")
        ));
    }
    let show = runs
        .iter()
        .find(|r| r.args == ["--show-target"])
        .ok_or("cli: no --show-target run")?;
    if show.exit_code != Some(0) {
        return Err(format!(
            "cli: --show-target exited with {:?}: {}",
            show.exit_code,
            show.stderr.trim()
        ));
    }
    let t: TargetInfo = serde_json::from_str(show.stdout.trim()).map_err(|e| {
        format!(
            "cli: --show-target printed no target JSON ({e}): {}",
            show.stdout.trim()
        )
    })?;
    check_target(&t, i.symbol, ret_width_bits).map_err(|e| format!("cli: --show-target: {e}"))?;
    // `--symbol NAME --show-target`: the kernel's function by name is the
    // same target; a function it does not have is refused once the BTF is
    // read (exit 1, one line naming what it has).
    let named: Vec<&CliRun> = runs
        .iter()
        .filter(|r| r.args.first().is_some_and(|a| a == "--symbol"))
        .collect();
    let mut symbols = 0;
    for r in &named {
        let asked = r.args.get(1).map(String::as_str).unwrap_or_default();
        if asked == i.symbol {
            if r.exit_code != Some(0) || r.stdout != show.stdout {
                return Err(format!(
                    "cli: `--symbol {asked} --show-target` gave `{}` (exit {:?}), not the default's target",
                    r.stdout.trim(),
                    r.exit_code
                ));
            }
        } else if r.exit_code != Some(1)
            || r.stderr.lines().count() != 1
            || !r.stderr.contains(asked)
            || !r.stderr.contains(i.symbol)
        {
            return Err(format!(
                "cli: `{}` exited with {:?} and said `{}`: want exit 1, one line naming {asked} and the kernel's {}",
                r.args.join(" "),
                r.exit_code,
                r.stderr.trim(),
                i.symbol
            ));
        }
        symbols += 1;
    }
    if symbols < 2 {
        return Err(
            "cli: --symbol was not tried with the kernel's function and an unknown one".into(),
        );
    }
    // With --json a refusal is one JSON error object whose kind (what a
    // program decides on, never the words) is the refusal's, its message
    // naming what was asked: `--symbol NAME` the kernel lacks is `other`
    // (naming the kernel's function too); a trace buffer the kernel cannot
    // give is `trace-pipe`.
    let json: Vec<&CliRun> = runs
        .iter()
        .filter(|r| r.args.first().is_some_and(|a| a == "--json"))
        .collect();
    let mut kinds = Vec::new();
    for r in &json {
        let (want, names): (Failure, Vec<&str>) = match json_refusal(&r.args) {
            Some((kind, asked)) if kind == Failure::Other => (kind, vec![asked, i.symbol]),
            Some((kind, asked)) => (kind, vec![asked]),
            None => {
                return Err(format!(
                    "cli: `{}`: no refusal is expected of it",
                    r.args.join(" ")
                ))
            }
        };
        let said = unlink_schema::TracerError::last_in(&r.stderr);
        let right = r.exit_code == Some(1)
            && r.stderr.lines().count() == 1
            && said
                .as_ref()
                .is_some_and(|e| e.error == want && names.iter().all(|n| e.message.contains(n)));
        if !right {
            return Err(format!(
                "cli: `{}` exited with {:?} and said `{}`: want exit 1 and one JSON error object of kind `{want}` naming {}",
                r.args.join(" "),
                r.exit_code,
                r.stderr.trim(),
                names.join(" and ")
            ));
        }
        kinds.push(want);
    }
    for kind in [Failure::Other, Failure::TracePipe] {
        if !kinds.contains(&kind) {
            return Err(format!(
                "cli: no refusal of kind `{kind}` was tried with --json"
            ));
        }
    }
    // -v: libbpf's messages of the load (the verifier's among them) on
    // stderr as `libbpf: ` lines, then the run as without it.
    let verbose = runs
        .iter()
        .find(|r| r.args.first().is_some_and(|a| a == "-v"))
        .ok_or("cli: -v was not tried")?;
    let libbpf_lines = verbose
        .stderr
        .lines()
        .filter(|l| l.starts_with("libbpf: "))
        .count();
    let doubled = verbose.stderr.contains("libbpf: libbpf: ");
    if verbose.exit_code != Some(0) || libbpf_lines < VERBOSE_LOAD_LINES || doubled {
        return Err(format!(
            "cli: `{}` exited with {:?} and printed {libbpf_lines} libbpf lines{}: want exit 0 and libbpf's messages of the load (at least {VERBOSE_LOAD_LINES}), each `libbpf: ` once: {}",
            verbose.args.join(" "),
            verbose.exit_code,
            if doubled { ", their prefix doubled" } else { "" },
            verbose.stderr.lines().next().unwrap_or("it said nothing")
        ));
    }
    let bad: Vec<&CliRun> = runs
        .iter()
        .filter(|r| {
            r.args != ["--show-target"]
                && !named.contains(r)
                && !json.contains(r)
                && !std::ptr::eq(*r, verbose)
        })
        .collect();
    if bad.is_empty() {
        return Err("cli: no bad argument was tried".into());
    }
    for r in &bad {
        let arg = r.args.first().map(String::as_str).unwrap_or_default();
        let option = arg.split_once('=').map_or(arg, |(o, _)| o);
        if r.exit_code != Some(2) || !r.stderr.contains(option) {
            return Err(format!(
                "cli: `{}` exited with {:?} and said `{}`: want exit 2 naming {option}",
                r.args.join(" "),
                r.exit_code,
                r.stderr.lines().next().unwrap_or_default()
            ));
        }
    }
    let empty = check_empty_modes(&i.run.empty_modes, i.symbol)?;
    Ok(format!(
        "--show-target {} `{}` agrees with tracefs and the traced runs, also by --symbol; an unknown --symbol refused; {} bad arguments refused (exit 2); {empty}",
        t.symbol,
        t.proto,
        bad.len()
    ))
}

/// The lines of tracefs `kprobe_events` that are the tracer's return
/// probe entries (group [`unlink_schema::RETPROBE_GROUP`]) (pure).
pub fn tracer_entries(kprobe_events: &str) -> Vec<&str> {
    let group = format!(":{}/", unlink_schema::RETPROBE_GROUP);
    kprobe_events
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|d| d.contains(&group))
        })
        .collect()
}

/// The probe types (`k`, `r`) the kernel's kprobe list has on `symbol`
/// (pure): lines `ADDRESS  TYPE  SYMBOL+OFFSET  [FLAGS]`, sorted. The
/// offset of a probe on the function's entry is 0, or past the entry's
/// landing pad where the kernel has one (x86_64 with IBT: `+0x4`, 6.12).
pub fn kprobes_on(list: &str, symbol: &str) -> Vec<String> {
    let mut types: Vec<String> = list
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_addr, kind, place) = (f.next()?, f.next()?, f.next()?);
            (place.split('+').next() == Some(symbol)).then(|| kind.to_string())
        })
        .collect();
    types.sort();
    types
}

/// Each empty mode attached exactly its probes, as the kernel lists them
/// while it ran (empty-kprobe a kprobe, empty-kretprobe a kretprobe,
/// empty-pair both), exited 0 on SIGINT, and its summary names the mode
/// and a return probe exactly where it has one (pure).
pub fn check_empty_modes(
    runs: &[unlink_schema::EmptyModeRun],
    symbol: &str,
) -> Result<String, String> {
    use unlink_schema::TracerMode as M;
    let wanted: [(M, &[&str]); 3] = [
        (M::EmptyKprobe, &["k"]),
        (M::EmptyKretprobe, &["r"]),
        (M::EmptyPair, &["k", "r"]),
    ];
    // A tracer killed once attached leaves its tracefs entry; the next
    // one with a return probe removes it before adding its own.
    let entries = |text: &str| tracer_entries(text).len();
    let killed = runs
        .iter()
        .find(|r| r.killed)
        .ok_or("cli: no tracer was killed to leave its tracefs entry behind")?;
    if entries(&killed.kprobe_events) != 1 {
        return Err(format!(
            "cli: the killed --mode {} had {} tracefs entries while attached, want its own",
            killed.mode.name(),
            entries(&killed.kprobe_events)
        ));
    }
    for (mode, want) in wanted {
        let name = mode.name();
        let r = runs
            .iter()
            .find(|r| r.mode == mode && !r.killed)
            .ok_or(format!("cli: no --mode {name} run"))?;
        let has_return = want.contains(&"r");
        if entries(&r.kprobe_events) != usize::from(has_return) {
            return Err(format!(
                "cli: --mode {name} ran with {} tracefs return probe entries, want {} (a dead tracer's left-over must be removed)",
                entries(&r.kprobe_events),
                usize::from(has_return)
            ));
        }
        let got = kprobes_on(&r.kprobes, symbol);
        if got != want {
            return Err(format!(
                "cli: --mode {name} attached {got:?} on {symbol} as the kernel lists them, want {want:?}"
            ));
        }
        if r.exit_code != Some(0) {
            return Err(format!(
                "cli: --mode {name} exited with {:?}: {}",
                r.exit_code,
                r.stderr.lines().last().unwrap_or_default()
            ));
        }
        let s: unlink_schema::Summary = r
            .stderr
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or(format!("cli: --mode {name} left no JSON summary"))?;
        if s.mode != name || s.return_probe.is_some() != has_return {
            return Err(format!(
                "cli: --mode {name}'s summary says mode {} with return probe {:?}",
                s.mode, s.return_probe
            ));
        }
    }
    Ok("the empty modes attached exactly their probes (the kernel's kprobe list), a killed tracer's tracefs entry removed by the next".to_string())
}

/// One `--show-target` answer against the symbol tracefs offers and the
/// return width the traced runs proved (pure).
pub fn check_target(
    t: &TargetInfo,
    symbol: &str,
    ret_width_bits: Option<u32>,
) -> Result<(), String> {
    if t.symbol != symbol {
        return Err(format!("symbol {}, tracefs offers {symbol}", t.symbol));
    }
    let (ret, params) = t
        .proto
        .split_once(" (")
        .and_then(|(r, p)| Some((r, p.strip_suffix(')')?)))
        .ok_or_else(|| format!("prototype `{}` is not `RET (PARAMS)`", t.proto))?;
    let params: Vec<&str> = params.split(", ").collect();
    let int_ret = matches!(ret, "s32" | "u32");
    if int_ret != t.ret_is_int || !matches!(ret, "s32" | "u32" | "s64" | "u64") {
        return Err(format!(
            "return type `{ret}` but ret_is_int {}",
            t.ret_is_int
        ));
    }
    if let Some(bits) = ret_width_bits {
        if t.ret_is_int != (bits == 32) {
            return Err(format!(
                "ret_is_int {} but the traced runs read ret at {bits} bits",
                t.ret_is_int
            ));
        }
    }
    match params.get(t.name_arg as usize) {
        Some(p) if p.starts_with("struct filename *") => {}
        other => {
            return Err(format!(
                "name_arg {} is `{}`, not the struct filename *",
                t.name_arg,
                other.unwrap_or(&"(none)")
            ))
        }
    }
    if let Some(d) = t.dfd_arg {
        if !params.get(d as usize).is_some_and(|p| p.ends_with(" dfd")) {
            return Err(format!(
                "dfd_arg {d} is not the `dfd` parameter of `{}`",
                t.proto
            ));
        }
    }
    Ok(())
}

/// The text output: each line parses back, and for both processes' calls
/// its fields equal the calls' own record and the JSON of the same calls
/// (the `--pid` tracer's).
pub fn check_text(
    i: &OptionsInput,
    text_out: &str,
    text_err: &str,
    json: &ProbeOutput,
) -> Result<String, String> {
    let t = i.tracer(OptionProbe::Text)?;
    exited_cleanly(t, false)?;
    let mut lines = Vec::new();
    for l in text_out.lines().filter(|l| !l.trim().is_empty()) {
        lines.push(text::parse_line(l)?);
    }
    // Its summary: every line counted, every call joined, nothing lost.
    let s = text::parse_summary(text_err).ok_or("text: no summary line on stderr")?;
    let n = lines.len() as u64;
    let counts = [
        ("lines", s.lines, n),
        ("events", s.events, n),
        ("dropped", s.dropped, 0),
        ("returns without entry", s.unpaired_returns, 0),
        ("entries never returned", s.inflight, 0),
        ("lost entries not remembered", s.lost_untracked, 0),
        ("undecodable records", s.decode_errors, 0),
    ];
    if let Some((name, got, want)) = counts.iter().find(|(_, got, want)| got != want) {
        return Err(format!(
            "text: the summary says {name} {got}, want {want} ({n} lines printed)"
        ));
    }
    match (i.reports_missed, s.kernel_missed) {
        (Some(true), None) | (Some(false), Some(_)) => {
            return Err(format!(
                "text: the summary's kernel-reported missed is {:?} on a kernel that {} report it",
                s.kernel_missed,
                if i.reports_missed == Some(true) {
                    "does"
                } else {
                    "does not"
                }
            ))
        }
        _ => {}
    }
    let near = i.steps.first().map(|s| s.start_ns).unwrap_or(0);
    for e in &mut lines {
        e.time_ns = text::on_day_of(e.time_ns, near);
    }
    let pids: std::collections::BTreeSet<u32> = i.steps.iter().map(|s| s.pid).collect();
    let ours: Vec<JsonEvent> = lines
        .into_iter()
        .filter(|e| pids.contains(&e.pid))
        .collect();
    let n = fields::check_run(i.steps, &ours, i.symbol, text::TEXT_RESOLUTION)
        .map_err(|e| format!("text: {e}"))?;
    // The same calls as the JSON output.
    let key = |e: &JsonEvent| (e.tid, e.filename.clone(), e.ret, e.errno.clone(), e.dfd);
    let mut a: Vec<_> = ours
        .iter()
        .filter(|e| e.pid == i.run.pid)
        .map(key)
        .collect();
    let mut b: Vec<_> = json.events.iter().map(key).collect();
    a.sort();
    b.sort();
    if a != b {
        return Err(format!(
            "text: the agent's calls differ between the text and the JSON output: text {a:?}, JSON {b:?}"
        ));
    }
    Ok(format!(
        "{n} text lines parsed back, equal to the calls and to the JSON"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::fields::tests::{step, traced};
    use super::*;

    const AGENT: u32 = 70;
    const OTHER: u32 = 80;

    fn run() -> (OptionsRun, Vec<Step>) {
        let mut steps = Vec::new();
        for i in 0..6 {
            let mut a = step(&format!("a{i}"), 0, 1_000_000_000 + i * 100_000);
            a.pid = AGENT;
            a.tid = AGENT;
            steps.push(a);
        }
        for i in 0..4 {
            let mut o = step(
                &format!("o{i}"),
                if i == 3 { -2 } else { 0 },
                1_000_050_000 + i * 100_000,
            );
            o.pid = OTHER;
            o.tid = OTHER;
            o.comm = "unlink-other".into();
            steps.push(o);
        }
        // The agent's second thread, after its main one.
        for i in 0..2 {
            let mut h = step(&format!("h{i}"), 0, 1_000_700_000 + i * 100_000);
            h.pid = AGENT;
            h.tid = AGENT + 1;
            h.comm = "agent-helper".into();
            steps.push(h);
        }
        // A second process of the chosen name, and two that almost match.
        for (pid, comm) in [
            (81, "unlink-other"),
            (82, "unlink-othe"),
            (83, "unlink-other2"),
        ] {
            let mut o = step(
                &format!("x{pid}"),
                0,
                1_000_060_000 + u64::from(pid) * 1_000,
            );
            o.pid = pid;
            o.tid = pid;
            o.comm = comm.into();
            steps.push(o);
        }
        let tracer = |probe, by_itself, secs: f64| OptionTracer {
            probe,
            args: vec![],
            exit_code: Some(0),
            exited_by_itself: by_itself,
            ready_to_exit_s: secs,
            ready_to_exit_min_s: secs - 0.05,
            ready_to_exit_max_s: secs + 0.05,
        };
        let r = OptionsRun {
            pid: AGENT,
            other_pid: OTHER,
            other_comm: "unlink-other".into(),
            count: 3,
            duration_s: 2.0,
            cli: Vec::new(),
            empty_modes: empty_modes(),
            tracers: vec![
                tracer(OptionProbe::Text, false, 3.0),
                tracer(OptionProbe::Pid, false, 3.0),
                tracer(OptionProbe::Comm, false, 3.0),
                tracer(OptionProbe::Count, true, 0.5),
                tracer(OptionProbe::Duration, true, 2.1),
            ],
        };
        (r, steps)
    }

    /// The three empty modes as a right tracer runs them (what the
    /// kernel's kprobe list shows while each is attached).
    fn empty_modes() -> Vec<unlink_schema::EmptyModeRun> {
        use unlink_schema::TracerMode as M;
        [
            (M::EmptyKprobe, "ffffffff81300000  k  do_unlinkat+0x0    [FTRACE]\n", false),
            (M::EmptyKretprobe, "ffffffff81300000  r  do_unlinkat+0x0    [FTRACE]\n", true),
            (
                M::EmptyPair,
                "ffffffff81300000  r  do_unlinkat+0x0    [FTRACE]\nffffffff81300000  k  do_unlinkat+0x0    [FTRACE]\nffffffff81400000  k  vfs_unlink+0x0\n",
                true,
            ),
        ]
        .map(|(mode, kprobes, ret)| unlink_schema::EmptyModeRun {
            mode,
            killed: false,
            kprobe_events: if ret {
                "r1024:unlink_tracer/ret_90_0 do_unlinkat\n".into()
            } else {
                String::new()
            },
            exit_code: Some(0),
            stderr: format!(
                "unlink-tracer: {} mode on do_unlinkat\n{}\n",
                mode.name(),
                serde_json::json!({
                    "mode": mode.name(), "symbol": "do_unlinkat", "ret_width_bits": 32,
                    "printed": 0, "stopped_by": "signal", "entries": 0, "returns": 0,
                    "events": 0, "dropped": 0, "unpaired_returns": 0, "inflight": 0,
                    "lost_untracked": 0, "kernel_missed": null,
                    "return_probe": if ret { serde_json::json!({"via": "tracefs", "maxactive": 1024}) } else { serde_json::Value::Null },
                })
            ),
            kprobes: kprobes.to_string(),
        })
        .into_iter()
        .chain(std::iter::once(unlink_schema::EmptyModeRun {
            mode: unlink_schema::TracerMode::EmptyKretprobe,
            exit_code: None,
            stderr: String::new(),
            kprobes: "ffffffff81300000  r  do_unlinkat+0x0    [FTRACE]\n".into(),
            kprobe_events: "r1024:unlink_tracer/ret_80_0 do_unlinkat\n".into(),
            killed: true,
        }))
        .collect()
    }

    #[test]
    fn each_empty_mode_attaches_exactly_its_probes() {
        use unlink_schema::TracerMode as M;
        assert_eq!(
            check_empty_modes(&empty_modes(), "do_unlinkat").map(|_| ()),
            Ok(())
        );
        type Bad = fn(&mut Vec<unlink_schema::EmptyModeRun>);
        let cases: [(&str, Bad); 7] = [
            // The dead tracer's entry not removed by the next start.
            (
                "--mode empty-kretprobe ran with 2 tracefs return probe entries",
                |r| {
                    r[1].kprobe_events
                        .push_str("r1024:unlink_tracer/ret_80_0 do_unlinkat\n")
                },
            ),
            ("no tracer was killed", |r| r.retain(|m| !m.killed)),
            // The mode's condition inverted: empty-kprobe attaches nothing.
            ("--mode empty-kprobe attached []", |r| {
                r[0].kprobes = String::new()
            }),
            // The pair missing its return half.
            ("--mode empty-pair attached [\"k\"]", |r| {
                r[2].kprobes = "ffffffff81300000  k  do_unlinkat+0x0    [FTRACE]\n".into()
            }),
            ("--mode empty-kretprobe exited with Some(1)", |r| {
                r[1].exit_code = Some(1)
            }),
            ("no --mode empty-pair run", |r| {
                r.retain(|m| m.mode != M::EmptyPair)
            }),
            ("--mode empty-kprobe's summary says", |r| {
                r[0].stderr = r[1].stderr.replace("empty-kretprobe", "empty-kprobe")
            }),
        ];
        for (want, bad) in cases {
            let mut runs = empty_modes();
            bad(&mut runs);
            let e = check_empty_modes(&runs, "do_unlinkat").unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert_eq!(
            kprobes_on(
                "ffffffff81300000  r  do_unlinkat+0x0    [FTRACE]\nffffffff8  k  do_unlinkat+0x4\nffffffff9  k  do_unlinkat_helper+0x0\n",
                "do_unlinkat"
            ),
            ["k", "r"]
        );
    }

    fn output(events: Vec<JsonEvent>, stopped_by: &str, entries: u64) -> ProbeOutput {
        let mut s = Summary {
            stopped_by: stopped_by.into(),
            printed: events.len() as u64,
            ..Summary::default()
        };
        s.counters.entries = entries;
        s.counters.returns = entries;
        ProbeOutput {
            events,
            summary: Some(s),
        }
    }

    fn of(steps: &[Step], pid: u32) -> Vec<JsonEvent> {
        steps.iter().filter(|s| s.pid == pid).map(traced).collect()
    }

    fn named(steps: &[Step], comm: &str) -> Vec<JsonEvent> {
        steps
            .iter()
            .filter(|s| s.comm == comm)
            .map(traced)
            .collect()
    }

    #[test]
    fn show_target_answers_are_checked() {
        let good = TargetInfo {
            symbol: "do_unlinkat".into(),
            proto: "s32 (s32 dfd, struct filename * name)".into(),
            ret_is_int: true,
            dfd_arg: Some(0),
            name_arg: 1,
        };
        assert_eq!(check_target(&good, "do_unlinkat", Some(32)), Ok(()));
        let long = TargetInfo {
            proto: "s64 (s32 dfd, struct filename * name)".into(),
            ret_is_int: false,
            ..good.clone()
        };
        assert_eq!(check_target(&long, "do_unlinkat", Some(64)), Ok(()));
        type Bad = fn(&mut TargetInfo);
        let cases: [(&str, Bad, Option<u32>); 6] = [
            (
                "symbol",
                |t| t.symbol = "filename_unlinkat".into(),
                Some(32),
            ),
            ("return type", |t| t.ret_is_int = false, Some(32)),
            (
                "ret_is_int true but the traced runs read ret at 64",
                |_| {},
                Some(64),
            ),
            ("name_arg 0", |t| t.name_arg = 0, Some(32)),
            ("dfd_arg 1", |t| t.dfd_arg = Some(1), Some(32)),
            ("prototype", |t| t.proto = String::new(), Some(32)),
        ];
        for (want, bad, bits) in cases {
            let mut t = good.clone();
            bad(&mut t);
            let e = check_target(&t, "do_unlinkat", bits).unwrap_err();
            assert!(e.starts_with(want), "{want}: {e}");
        }
    }

    #[test]
    fn bad_arguments_must_be_refused_by_name() {
        let (mut r, steps) = run();
        let i = |r: &OptionsRun| {
            let show = CliRun {
                args: vec!["--show-target".into()],
                exit_code: Some(0),
                stdout: r#"{"symbol":"do_unlinkat","proto":"s32 (s32 dfd, struct filename * name)","ret_is_int":true,"dfd_arg":0,"name_arg":1}"#.into(),
                stderr: String::new(),
                killed: false,
            };
            let mut r = r.clone();
            r.cli.insert(0, show);
            r
        };
        let target = r#"{"symbol":"do_unlinkat","proto":"s32 (s32 dfd, struct filename * name)","ret_is_int":true,"dfd_arg":0,"name_arg":1}"#;
        let run = |args: &[&str], code, stdout: &str, stderr: &str| CliRun {
            args: args.iter().map(|a| a.to_string()).collect(),
            exit_code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
            killed: false,
        };
        r.cli = vec![
            run(&["--count", "0"], 2, "", "error: invalid value '0' for '--count <COUNT>'"),
            run(&["--symbol", "do_unlinkat", "--show-target"], 0, target, ""),
            run(
                &["--symbol", "no_such_unlinkat", "--show-target"],
                1,
                "",
                "unlink-tracer: no_such_unlinkat: not a function in the kernel's BTF; unlink functions there: do_unlinkat\n",
            ),
            run(
                &["--json", "--symbol", "no_such_unlinkat"],
                1,
                "",
                "{\"error\":\"other\",\"message\":\"no_such_unlinkat: not a function in the kernel's BTF; unlink functions there: do_unlinkat\"}\n",
            ),
            run(
                &["--json", "--mode", "printk", "--trace-buffer-kib", "4194304"],
                1,
                "",
                "{\"error\":\"trace-pipe\",\"message\":\"trace_pipe: /sys/kernel/tracing/buffer_size_kb = 4194304: Cannot allocate memory (os error 12)\"}\n",
            ),
            run(
                &["-v", "--duration", "1"],
                0,
                "",
                &format!(
                    "{}unlink-tracer: kprobe mode on do_unlinkat\nunlink-tracer: 0 lines; events 0\n",
                    "libbpf: a message of the load\n".repeat(25)
                ),
            ),
        ];
        let ok = i(&r);
        let input = |r| OptionsInput {
            run: r,
            steps: &steps,
            symbol: "do_unlinkat",
            reports_missed: Some(false),
        };
        assert!(
            check_cli(&input(&ok), Some(32)).is_ok(),
            "{:?}",
            check_cli(&input(&ok), Some(32))
        );
        let mut accepted = ok.clone();
        accepted.cli[1].exit_code = Some(0);
        let e = check_cli(&input(&accepted), Some(32)).unwrap_err();
        assert!(e.starts_with("cli: `--count 0` exited with Some(0)"), "{e}");
        // A bad argument taken: the tracer traced until the agent killed it.
        let mut hung = ok.clone();
        hung.cli[1].exit_code = None;
        hung.cli[1].killed = true;
        let e = check_cli(&input(&hung), Some(32)).unwrap_err();
        assert!(
            e.starts_with("cli: `--count 0` had not exited after 20 s and was killed"),
            "{e}"
        );
        let mut none = ok.clone();
        none.cli.remove(1);
        assert!(check_cli(&input(&none), Some(32)).is_err());
        // An unknown --symbol accepted, or the kernel's giving another target.
        let mut unknown = ok.clone();
        unknown.cli[3].exit_code = Some(0);
        let e = check_cli(&input(&unknown), Some(32)).unwrap_err();
        assert!(e.starts_with("cli: `--symbol no_such_unlinkat"), "{e}");
        let mut named = ok.clone();
        named.cli[2].stdout = String::new();
        let e = check_cli(&input(&named), Some(32)).unwrap_err();
        assert!(
            e.starts_with("cli: `--symbol do_unlinkat --show-target` gave"),
            "{e}"
        );
        // A refusal with --json: its kind, its form, its words.
        let json_said = |stderr: &str| {
            let mut c = ok.clone();
            c.cli[4].stderr = stderr.into();
            let i = OptionsInput {
                run: &c,
                steps: &steps,
                symbol: "do_unlinkat",
                reports_missed: Some(false),
            };
            check_cli(&i, Some(32))
        };
        for bad in [
            "{\"error\":\"verifier\",\"message\":\"no_such_unlinkat: not a function; do_unlinkat\"}\n",
            "unlink-tracer: no_such_unlinkat: not a function in the kernel's BTF; unlink functions there: do_unlinkat\n",
            "{\"error\":\"other\",\"message\":\"not a function\"}\n",
        ] {
            let e = json_said(bad).unwrap_err();
            assert!(e.starts_with("cli: `--json --symbol no_such_unlinkat` exited"), "{e}");
        }
        // Every kind said `other` (the kind read from nothing but the
        // tracer's own error type would be lost that way).
        let mut all_other = ok.clone();
        all_other.cli[5].stderr = all_other.cli[5].stderr.replace("trace-pipe", "other");
        let e = check_cli(&input(&all_other), Some(32)).unwrap_err();
        assert!(
            e.starts_with("cli: `--json --mode printk --trace-buffer-kib 4194304` exited"),
            "{e}"
        );
        // -v without libbpf's messages, or failing.
        for (stderr, code) in [
            ("unlink-tracer: 0 lines; events 0\n", 0),
            ("", 1),
            (
                "libbpf: libbpf: loading object 'unlink_bpf' from buffer\n",
                0,
            ),
        ] {
            let mut quiet = ok.clone();
            quiet.cli[6].stderr = stderr.into();
            quiet.cli[6].exit_code = Some(code);
            let i = OptionsInput {
                run: &quiet,
                steps: &steps,
                symbol: "do_unlinkat",
                reports_missed: Some(false),
            };
            let e = check_cli(&i, Some(32)).unwrap_err();
            assert!(e.starts_with("cli: `-v --duration 1` exited with"), "{e}");
        }
        // A size the kernel cannot give taken: the tracer traced.
        let mut taken = ok.clone();
        taken.cli[5].exit_code = None;
        taken.cli[5].killed = true;
        assert!(check_cli(&input(&taken), Some(32)).is_err());
        for (gone, kind) in [(4, "other"), (5, "trace-pipe")] {
            let mut c = ok.clone();
            c.cli.remove(gone);
            let i = OptionsInput {
                run: &c,
                steps: &steps,
                symbol: "do_unlinkat",
                reports_missed: Some(false),
            };
            let e = check_cli(&i, Some(32)).unwrap_err();
            assert_eq!(
                e,
                format!("cli: no refusal of kind `{kind}` was tried with --json")
            );
        }
        let e = check_cli(&input(&r), Some(32)).unwrap_err();
        assert!(e.starts_with("cli: no --show-target"), "{e}");
    }

    /// The text tracer's summary line for `lines` lines and `events` events.
    fn text_summary(lines: usize, events: usize) -> String {
        format!("unlink-tracer: {lines} lines; events {events}, dropped 0, returns without entry 0, entries never returned 0, lost entries not remembered 0, undecodable records 0, kernel-reported missed not reported by this kernel\n")
    }

    fn text_of(events: &[JsonEvent]) -> String {
        events
            .iter()
            .map(|e| {
                let tod = e.time_ns % (86_400 * 1_000_000_000);
                let (s, us) = (tod / 1_000_000_000, (tod % 1_000_000_000) / 1_000);
                format!(
                    "{:02}:{:02}:{:02}.{us:06} {}[{}/{}] {}(AT_FDCWD, \"{}\") = {}{} <{:.1}µs>\n",
                    s / 3600,
                    (s / 60) % 60,
                    s % 60,
                    e.comm,
                    e.pid,
                    e.tid,
                    e.symbol,
                    e.filename,
                    e.ret,
                    e.errno
                        .as_ref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default(),
                    e.latency_ns as f64 / 1e3
                )
            })
            .collect()
    }

    #[test]
    fn correct_outputs_pass() {
        let (r, steps) = run();
        let i = OptionsInput {
            run: &r,
            steps: &steps,
            symbol: "do_unlinkat",
            reports_missed: Some(false),
        };
        let pid = output(of(&steps, AGENT), "signal", 8);
        assert!(check_pid(&i, &pid).is_ok(), "{:?}", check_pid(&i, &pid));
        let comm = output(named(&steps, "unlink-other"), "signal", 5);
        assert!(check_comm(&i, &comm).is_ok(), "{:?}", check_comm(&i, &comm));
        let count = output(of(&steps, AGENT).into_iter().take(3).collect(), "count", 3);
        assert!(
            check_count(&i, &count).is_ok(),
            "{:?}",
            check_count(&i, &count)
        );
        let dur = output(of(&steps, AGENT), "duration", 8);
        assert!(
            check_duration(&i, &dur).is_ok(),
            "{:?}",
            check_duration(&i, &dur)
        );
        let all: Vec<JsonEvent> = steps.iter().map(traced).collect();
        let t = check_text(
            &i,
            &text_of(&all),
            &text_summary(all.len(), all.len()),
            &pid,
        );
        assert!(t.is_ok(), "{t:?}");
    }

    /// Each option's check fails, naming the option, on a corrupted output.
    #[test]
    fn each_corrupted_option_is_named() {
        let (r, steps) = run();
        let i = OptionsInput {
            run: &r,
            steps: &steps,
            symbol: "do_unlinkat",
            reports_missed: Some(false),
        };
        let all: Vec<JsonEvent> = steps.iter().map(traced).collect();
        let mine = of(&steps, AGENT);
        let theirs = of(&steps, OTHER);

        // --pid ignored: every process reported.
        let e = check_pid(&i, &output(all.clone(), "signal", 10)).unwrap_err();
        assert!(
            e.starts_with("--pid: reported a call it should have left out"),
            "{e}"
        );
        // --pid applied in user space only: the kernel counted everyone.
        let e = check_pid(&i, &output(mine.clone(), "signal", 13)).unwrap_err();
        assert!(e.contains("--pid: the kernel-side counters"), "{e}");
        // --pid losing a call.
        let e = check_pid(&i, &output(mine[1..].to_vec(), "signal", 8)).unwrap_err();
        assert!(e.starts_with("--pid: no event for `a0`"), "{e}");
        // --pid compared with the thread id: only the main thread's calls.
        let main_only: Vec<JsonEvent> = mine.iter().filter(|e| e.tid == AGENT).cloned().collect();
        let e = check_pid(&i, &output(main_only, "signal", 6)).unwrap_err();
        assert!(e.starts_with("--pid: no event for `h0`"), "{e}");
        // --comm ignored, or matching the agent.
        let e = check_comm(&i, &output(all.clone(), "signal", 10)).unwrap_err();
        assert!(e.starts_with("--comm: reported a call"), "{e}");
        let e = check_comm(&i, &output(theirs[..3].to_vec(), "signal", 4)).unwrap_err();
        assert!(e.starts_with("--comm: no event for `o3`"), "{e}");
        // --comm as a prefix match, or a match up to the shorter name.
        for near in ["unlink-othe", "unlink-other2"] {
            let mut got = named(&steps, "unlink-other");
            got.extend(named(&steps, near));
            let e = check_comm(&i, &output(got, "signal", 6)).unwrap_err();
            assert!(
                e.starts_with("--comm: reported a call it should have left out: `x8"),
                "{near}: {e}"
            );
        }
        // --comm taking one process of that name only.
        let e = check_comm(&i, &output(theirs.clone(), "signal", 4)).unwrap_err();
        assert!(e.starts_with("--comm: no event for `x81`"), "{e}");
        // --count off by one, or not stopping.
        let e = check_count(&i, &output(mine[..4].to_vec(), "count", 4)).unwrap_err();
        assert!(e.starts_with("--count 3: 4 events"), "{e}");
        let e = check_count(&i, &output(mine[1..4].to_vec(), "count", 3)).unwrap_err();
        assert!(e.starts_with("--count 3: the first 3 calls"), "{e}");
        let e = check_count(&i, &output(mine[..3].to_vec(), "signal", 3)).unwrap_err();
        assert!(e.contains("stopped by `signal`"), "{e}");
        let mut late = r.clone();
        late.tracers[3].exited_by_itself = false;
        let li = OptionsInput {
            run: &late,
            ..i.clone()
        };
        let e = check_count(&li, &output(mine[..3].to_vec(), "count", 3)).unwrap_err();
        assert!(e.contains("count tracer did not stop by itself"), "{e}");
        // --duration ignored, early, or at three times it (the bounds as
        // the agent measured them).
        for (lo, hi) in [(0.4, 0.5), (8.9, 9.0), (5.9, 6.1)] {
            let mut d = r.clone();
            d.tracers[4].ready_to_exit_min_s = lo;
            d.tracers[4].ready_to_exit_max_s = hi;
            let di = OptionsInput {
                run: &d,
                ..i.clone()
            };
            let e = check_duration(&di, &output(vec![], "duration", 0)).unwrap_err();
            assert!(e.starts_with("--duration 2: exited"), "{e}");
        }
        let e = check_duration(&i, &output(vec![], "signal", 0)).unwrap_err();
        assert!(e.contains("stopped by `signal`"), "{e}");
        let mut nos = output(vec![], "duration", 0);
        nos.summary = None;
        let e = check_duration(&i, &nos).unwrap_err();
        assert!(e.contains("wrote no summary"), "{e}");
        // The text line: a wrong pid, a wrong latency, a wrong time.
        let pid = output(mine.clone(), "signal", 6);
        for (field, corrupt) in [
            (
                "text: tid:",
                (|e: &mut JsonEvent| e.tid += 1) as fn(&mut JsonEvent),
            ),
            ("text: latency_ns:", |e| e.latency_ns = 90_000_000),
            ("text: time_ns:", |e| e.time_ns += 3_000_000_000),
            ("text: comm:", |e| e.comm = "sh".into()),
            ("text: errno:", |e| e.errno = Some("EIO".into())),
        ] {
            let mut bad = all.clone();
            bad.iter_mut().for_each(corrupt);
            let e = check_text(
                &i,
                &text_of(&bad),
                &text_summary(bad.len(), bad.len()),
                &pid,
            )
            .unwrap_err();
            assert!(e.starts_with(field), "{field}: {e}");
        }
        let e = check_text(&i, "not a line\n", &text_summary(1, 1), &pid).unwrap_err();
        assert!(e.starts_with("text line `not a line`"), "{e}");
        // The summary: a line not counted, no summary, a missed count where
        // the kernel reports none, or none where it does.
        let e = check_text(
            &i,
            &text_of(&all),
            &text_summary(all.len(), all.len() - 1),
            &pid,
        )
        .unwrap_err();
        assert!(e.starts_with("text: the summary says events"), "{e}");
        let e = check_text(&i, &text_of(&all), "", &pid).unwrap_err();
        assert!(e.starts_with("text: no summary line"), "{e}");
        let missed = text_summary(all.len(), all.len()).replace("not reported by this kernel", "0");
        let e = check_text(&i, &text_of(&all), &missed, &pid).unwrap_err();
        assert!(e.contains("kernel-reported missed"), "{e}");
        let new = OptionsInput {
            reports_missed: Some(true),
            ..i.clone()
        };
        let e = check_text(
            &new,
            &text_of(&all),
            &text_summary(all.len(), all.len()),
            &pid,
        )
        .unwrap_err();
        assert!(e.contains("does report it"), "{e}");
        assert!(check_text(&new, &text_of(&all), &missed, &pid).is_ok());
        // The two processes one after the other: nothing was filtered out.
        let mut apart = steps.clone();
        for s in apart.iter_mut().filter(|s| s.pid == OTHER) {
            s.start_ns += 10_000_000_000;
            s.end_ns += 10_000_000_000;
        }
        let ai = OptionsInput {
            steps: &apart,
            ..i.clone()
        };
        let e = check_pid(&ai, &output(mine, "signal", 6)).unwrap_err();
        assert!(e.contains("did not unlink at the same time"), "{e}");
    }
}
