//! Every field of a traced call against the agent's own record of the call
//! (`Step`: its pid, tid, comm, arguments, result and CLOCK_REALTIME window)
//! and the function tracefs says the kernel can probe. Pure: a failure
//! names the field first (`pid: ...`), so a corrupted field is named, never
//! hidden behind a pairing failure.

use unlink_schema::{JsonEvent, Step};

use super::expect;
pub use super::expect::reaches_unlink;

/// How far `time_ns` may fall outside the call's wall-clock window. The
/// tracer maps the BPF clock (CLOCK_MONOTONIC) to CLOCK_REALTIME with one
/// offset, the midpoint of the tightest of 8 monotonic-bracketed realtime
/// reads; the two clocks then tick together (the guest runs no NTP), so the
/// offset is off by at most half that bracket. Measured over the 10 cells
/// every entry fell inside its window (at least 2.7 µs after its start);
/// with a single pair of reads it had been up to 0.8 ms early. 250 µs is
/// well above the first and far below any wrong clock (a monotonic time
/// read as wall time is off by decades).
pub const TIME_SLACK_NS: u64 = 250_000;

/// How far `latency_ns` may exceed the call's window. Entry and return are
/// both inside the system call, and both clocks tick at one rate, so the
/// latency is shorter than the window; the BPF clock is the NMI-safe fast
/// accessor, which may lag an update by a tick's rounding: 10 µs covers it.
pub const LATENCY_SLACK_NS: u64 = 10_000;

/// The resolution of what is compared: exact for JSON, coarser for the
/// text line (time of day in µs, latency with one decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resolution {
    pub time_ns: u64,
    pub latency_ns: u64,
}

/// `ENOENT` for -2, None for ret >= 0: what the `errno` field must say.
pub fn errno_name(ret: i64) -> Option<String> {
    (ret < 0).then(|| format!("{:?}", nix::errno::Errno::from_raw(-ret as i32)))
}

/// The dfd the traced function must have seen for a call.
fn expected_dfd(s: &Step) -> Option<i32> {
    match s.dfd.as_deref() {
        None | Some("AT_FDCWD") => Some(-100),
        Some(_) => s.dirfd,
    }
}

/// Whether the tracer's filename is what the function saw of the call's
/// path (see [`expect::filename`]).
fn name_matches(e: &JsonEvent, s: &Step) -> bool {
    e.filename == expect::filename(s)
}

fn in_window(e: &JsonEvent, s: &Step, slack: u64) -> bool {
    e.time_ns + slack >= s.start_ns && e.time_ns <= s.end_ns + slack
}

/// Each step with the event that traced it. Paired on more than one key,
/// in order of trust: (thread, name), then name, then (thread, window),
/// then window; so when one field is corrupted the others still find the
/// event and the check names the field.
pub fn pair<'a>(steps: &[Step], events: &'a [JsonEvent]) -> Vec<Option<&'a JsonEvent>> {
    let mut used = vec![false; events.len()];
    type Key = fn(&JsonEvent, &Step) -> bool;
    let keys: [Key; 4] = [
        |e, s| e.tid == s.tid && name_matches(e, s),
        |e, s| name_matches(e, s) && (e.pid == s.pid || e.tid == s.tid || e.comm == s.comm),
        |e, s| e.tid == s.tid && in_window(e, s, TIME_SLACK_NS),
        |e, s| e.pid == s.pid && in_window(e, s, TIME_SLACK_NS),
    ];
    let mut paired: Vec<Option<usize>> = vec![None; steps.len()];
    for key in keys {
        for (i, s) in steps.iter().enumerate() {
            if paired[i].is_some() || !reaches_unlink(s) {
                continue;
            }
            if let Some(j) = (0..events.len()).find(|&j| !used[j] && key(&events[j], s)) {
                used[j] = true;
                paired[i] = Some(j);
            }
        }
    }
    paired.into_iter().map(|p| p.map(|j| &events[j])).collect()
}

/// One traced call against the call itself; Err names the first field
/// that is wrong.
pub fn check_event(e: &JsonEvent, s: &Step, symbol: &str, res: Resolution) -> Result<(), String> {
    let call = format!("`{}` ({} by tid {})", s.path, s.op, s.tid);
    let fail = |field: &str, got: String, want: String| {
        Err(format!("{field}: {call} traced with {got}, want {want}"))
    };
    if e.pid != s.pid {
        return fail("pid", e.pid.to_string(), s.pid.to_string());
    }
    if e.tid != s.tid {
        return fail("tid", e.tid.to_string(), s.tid.to_string());
    }
    if e.comm != s.comm {
        return fail("comm", format!("{:?}", e.comm), format!("{:?}", s.comm));
    }
    let dfd = expected_dfd(s);
    if e.dfd != dfd {
        return fail("dfd", format!("{:?}", e.dfd), format!("{dfd:?}"));
    }
    let unreadable = expect::unreadable(s);
    if e.filename_unreadable != unreadable {
        return fail(
            "filename_unreadable",
            e.filename_unreadable.to_string(),
            format!(
                "{unreadable} (a {}-byte path{})",
                s.path_len,
                if s.bad_pointer {
                    " at a bad pointer"
                } else {
                    ""
                }
            ),
        );
    }
    if !name_matches(e, s) {
        return fail(
            "filename",
            format!("{:?}", e.filename),
            format!("{:?}", expect::filename(s)),
        );
    }
    let long = expect::truncated(s);
    if e.filename_truncated != long {
        return fail(
            "filename_truncated",
            e.filename_truncated.to_string(),
            format!("{long} (a {}-byte path)", s.path_len),
        );
    }
    if e.ret != s.ret {
        return fail("ret", e.ret.to_string(), s.ret.to_string());
    }
    let errno = errno_name(s.ret);
    if e.errno != errno {
        return fail("errno", format!("{:?}", e.errno), format!("{errno:?}"));
    }
    if !in_window(e, s, TIME_SLACK_NS + res.time_ns) {
        return fail(
            "time_ns",
            e.time_ns.to_string(),
            format!(
                "within the call's window {}..{} (± {} ns)",
                s.start_ns,
                s.end_ns,
                TIME_SLACK_NS + res.time_ns
            ),
        );
    }
    let window = s.end_ns.saturating_sub(s.start_ns);
    if e.latency_ns == 0 || e.latency_ns > window + LATENCY_SLACK_NS + res.latency_ns {
        return fail(
            "latency_ns",
            e.latency_ns.to_string(),
            format!("> 0 and at most the call's {window} ns window"),
        );
    }
    if e.symbol != symbol {
        return fail("symbol", format!("{:?}", e.symbol), format!("{symbol:?}"));
    }
    Ok(())
}

/// Every call of `steps` that reaches the unlink function was traced, and
/// every field of its event is right. Ok: the number of calls checked.
pub fn check_run(
    steps: &[Step],
    events: &[JsonEvent],
    symbol: &str,
    res: Resolution,
) -> Result<usize, String> {
    let mut checked = 0;
    for (s, e) in steps.iter().zip(pair(steps, events)) {
        match e {
            Some(e) => check_event(e, s, symbol, res)?,
            None if reaches_unlink(s) => {
                return Err(format!(
                    "no event for `{}` ({} by pid {} tid {}): no field matches the call",
                    s.path, s.op, s.pid, s.tid
                ))
            }
            None => continue,
        }
        checked += 1;
    }
    if checked == 0 {
        return Err("no call to check".into());
    }
    Ok(checked)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn step(path: &str, ret: i64, start_ns: u64) -> Step {
        Step {
            op: "unlink".into(),
            dfd: None,
            dirfd: None,
            path: path.into(),
            path_len: path.len(),
            uid: 0,
            pid: 70,
            tid: 71,
            comm: "unlink-guest".into(),
            start_ns,
            end_ns: start_ns + 50_000,
            ret,
            flags: 0,
            bad_pointer: false,
        }
    }

    /// The event a correct tracer writes for `s`.
    pub fn traced(s: &Step) -> JsonEvent {
        JsonEvent {
            time_ns: s.start_ns + 10_000,
            pid: s.pid,
            tid: s.tid,
            comm: s.comm.clone(),
            dfd: Some(-100),
            filename: s.path.clone(),
            filename_truncated: false,
            filename_unreadable: false,
            ret: s.ret,
            errno: errno_name(s.ret),
            latency_ns: 20_000,
            symbol: "do_unlinkat".into(),
        }
    }

    fn steps() -> Vec<Step> {
        vec![
            step("test1", 0, 1_000_000_000),
            step("test2", 0, 1_000_100_000),
            step("missing", -2, 1_000_200_000),
        ]
    }

    #[test]
    fn a_correct_trace_passes() {
        let s = steps();
        let e: Vec<JsonEvent> = s.iter().map(traced).collect();
        assert_eq!(
            check_run(&s, &e, "do_unlinkat", Resolution::default()),
            Ok(3)
        );
    }

    /// One corrupted field at a time, in every event: the check names it.
    #[test]
    fn each_corrupted_field_is_named() {
        type Corrupt = fn(&mut JsonEvent);
        let cases: [(&str, Corrupt); 13] = [
            ("pid:", |e| e.pid += 1),
            ("tid:", |e| e.tid += 1),
            ("comm:", |e| e.comm = "rm".into()),
            ("dfd:", |e| e.dfd = Some(3)),
            ("filename:", |e| e.filename.push('x')),
            ("filename_truncated:", |e| e.filename_truncated = true),
            ("filename_unreadable:", |e| e.filename_unreadable = true),
            ("ret:", |e| e.ret = if e.ret == 0 { -13 } else { 0 }),
            ("errno:", |e| e.errno = Some("EPERM".into())),
            ("time_ns:", |e| e.time_ns += 1_000_000),
            ("latency_ns:", |e| e.latency_ns = 0),
            ("latency_ns:", |e| e.latency_ns = 10_000_000),
            ("symbol:", |e| e.symbol = "do_rmdir".into()),
        ];
        for (field, corrupt) in cases {
            let s = steps();
            let mut e: Vec<JsonEvent> = s.iter().map(traced).collect();
            e.iter_mut().for_each(corrupt);
            let err = check_run(&s, &e, "do_unlinkat", Resolution::default()).expect_err(field);
            assert!(err.starts_with(field), "{field}: {err}");
        }
        // The time as CLOCK_MONOTONIC (no offset to the wall clock).
        let s = steps();
        let mut e: Vec<JsonEvent> = s.iter().map(traced).collect();
        e.iter_mut().for_each(|e| e.time_ns -= 900_000_000);
        let err = check_run(&s, &e, "do_unlinkat", Resolution::default()).unwrap_err();
        assert!(err.starts_with("time_ns:"), "{err}");
    }

    #[test]
    fn a_missing_event_and_dirfds() {
        let s = steps();
        let e: Vec<JsonEvent> = s.iter().skip(1).map(traced).collect();
        let err = check_run(&s, &e, "do_unlinkat", Resolution::default()).unwrap_err();
        assert!(err.starts_with("no event for `test1`"), "{err}");

        let mut at = step("a", 0, 5_000);
        at.op = "unlinkat".into();
        at.dfd = Some("DIRFD".into());
        at.dirfd = Some(4);
        let mut e = traced(&at);
        e.dfd = Some(4);
        assert_eq!(
            check_event(&e, &at, "do_unlinkat", Resolution::default()),
            Ok(())
        );
        let mut rmdir = step("d", 0, 9_000);
        rmdir.op = "unlinkat(AT_REMOVEDIR)".into();
        rmdir.flags = 0x200;
        assert_eq!(
            check_run(&[at, rmdir], &[e], "do_unlinkat", Resolution::default()),
            Ok(1)
        );
    }

    #[test]
    fn truncation_is_expected_exactly_for_long_paths() {
        let long = "d".repeat(600);
        let s = step(&long, 0, 1_000);
        let mut e = traced(&s);
        // The start of the path, but not all the buffer holds.
        e.filename = "d".repeat(510);
        e.filename_truncated = true;
        let err = check_event(&e, &s, "do_unlinkat", Resolution::default()).unwrap_err();
        assert!(err.starts_with("filename:"), "{err}");
        e.filename = "d".repeat(511);
        e.filename_truncated = false;
        let err = check_event(&e, &s, "do_unlinkat", Resolution::default()).unwrap_err();
        assert!(err.starts_with("filename_truncated:"), "{err}");
        e.filename_truncated = true;
        assert_eq!(
            check_event(&e, &s, "do_unlinkat", Resolution::default()),
            Ok(())
        );
    }

    /// A name the function could not read: the event must say so, with no
    /// name, and a readable one must not.
    #[test]
    fn unreadable_names_are_expected_exactly() {
        let bad = Step {
            bad_pointer: true,
            ..step("", -14, 1_000)
        };
        let mut e = traced(&bad);
        let err = check_event(&e, &bad, "do_unlinkat", Resolution::default()).unwrap_err();
        assert!(err.starts_with("filename_unreadable: "), "{err}");
        e.filename_unreadable = true;
        assert_eq!(
            check_event(&e, &bad, "do_unlinkat", Resolution::default()),
            Ok(())
        );
        let at_limit = step(&"p".repeat(4096), -36, 1_000);
        let mut e = traced(&at_limit);
        e.filename_unreadable = true;
        let err = check_event(&e, &at_limit, "do_unlinkat", Resolution::default()).unwrap_err();
        assert!(err.starts_with("filename:"), "{err}");
        e.filename.clear();
        assert_eq!(
            check_event(&e, &at_limit, "do_unlinkat", Resolution::default()),
            Ok(())
        );
    }
}
