//! Verdicts of the options scenario: each tracer option that changes what
//! is reported, and the text output, judged against the calls the agent
//! and the second process recorded themselves. Pure over parsed files.

use unlink_schema::{JsonEvent, OptionProbe, OptionTracer, OptionsRun, Step, Summary};

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

/// The text output: each line parses back, and for both processes' calls
/// its fields equal the calls' own record and the JSON of the same calls
/// (the `--pid` tracer's).
pub fn check_text(i: &OptionsInput, text_out: &str, json: &ProbeOutput) -> Result<String, String> {
    let t = i.tracer(OptionProbe::Text)?;
    exited_cleanly(t, false)?;
    let mut lines = Vec::new();
    for l in text_out.lines().filter(|l| !l.trim().is_empty()) {
        lines.push(text::parse_line(l)?);
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
        let t = check_text(&i, &text_of(&all), &pid);
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
            let e = check_text(&i, &text_of(&bad), &pid).unwrap_err();
            assert!(e.starts_with(field), "{field}: {e}");
        }
        let e = check_text(&i, "not a line\n", &pid).unwrap_err();
        assert!(e.starts_with("text line `not a line`"), "{e}");
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
