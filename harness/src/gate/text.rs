//! The tracer's text line, parsed back into the fields its JSON has, so
//! the same per-field checks judge both outputs:
//! `23:41:07.123456 rm[345/346] do_unlinkat(AT_FDCWD, "x") = -2 (ENOENT) <14.2µs>`.

use unlink_schema::JsonEvent;

use super::fields::Resolution;

/// A text line as the JSON event it stands for: `time_ns` is the time of
/// day in ns (the line has no date), `latency_ns` the shown value.
pub fn parse_line(line: &str) -> Result<JsonEvent, String> {
    let bad = |what: &str| format!("text line `{line}`: {what}");
    let (tod, rest) = line.split_once(' ').ok_or_else(|| bad("no time of day"))?;
    let time_ns = parse_time_of_day(tod).ok_or_else(|| bad("bad time of day"))?;
    // comm[pid/tid]: the comm may hold `[`; the ids are the last bracket
    // before the symbol.
    let open = rest.find("] ").ok_or_else(|| bad("no [pid/tid]"))?;
    let head = &rest[..open];
    let lb = head.rfind('[').ok_or_else(|| bad("no [pid/tid]"))?;
    let comm = head[..lb].to_string();
    let (pid, tid) = head[lb + 1..]
        .split_once('/')
        .and_then(|(p, t)| Some((p.parse().ok()?, t.parse().ok()?)))
        .ok_or_else(|| bad("bad pid/tid"))?;
    let rest = &rest[open + 2..];
    let (symbol, rest) = rest.split_once('(').ok_or_else(|| bad("no call"))?;
    let (dfd, rest) = rest.split_once(", ").ok_or_else(|| bad("no dfd"))?;
    let dfd = match dfd {
        "AT_FDCWD" => Some(-100),
        "-" => None,
        n => match n.parse().map_err(|_| bad("bad dfd"))? {
            // The line spells the current directory's fd by name.
            -100 => return Err(bad("dfd -100 printed as a number, not AT_FDCWD")),
            fd => Some(fd),
        },
    };
    let (filename, truncated, unreadable, rest) = if let Some(r) = rest.strip_prefix("<unreadable>")
    {
        (String::new(), false, true, r)
    } else {
        let body = rest.strip_prefix('"').ok_or_else(|| bad("no filename"))?;
        let end = closing_quote(body).ok_or_else(|| bad("unterminated filename"))?;
        let after = &body[end + 1..];
        match after.strip_prefix("...<truncated>") {
            Some(r) => (body[..end].to_string(), true, false, r),
            None => (body[..end].to_string(), false, false, after),
        }
    };
    let rest = rest.strip_prefix(") = ").ok_or_else(|| bad("no ` = `"))?;
    let (ret_part, lat) = rest.rsplit_once(" <").ok_or_else(|| bad("no latency"))?;
    let (ret, errno) = match ret_part.split_once(" (") {
        Some((r, e)) => (r, Some(e.trim_end_matches(')').to_string())),
        None => (ret_part, None),
    };
    let ret = ret.parse().map_err(|_| bad("bad ret"))?;
    let latency_ns = parse_duration(lat.trim_end_matches('>')).ok_or_else(|| bad("bad latency"))?;
    Ok(JsonEvent {
        time_ns,
        pid,
        tid,
        comm,
        dfd,
        filename,
        filename_truncated: truncated,
        filename_unreadable: unreadable,
        ret,
        errno,
        latency_ns,
        symbol: symbol.to_string(),
    })
}

/// The index of the quote that closes an escaped string (`\"` and `\\`
/// are escapes).
fn closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// `HH:MM:SS.micros` → ns since midnight.
fn parse_time_of_day(s: &str) -> Option<u64> {
    let (hms, micros) = s.split_once('.')?;
    let mut it = hms.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, sec) = (it.next()??, it.next()??, it.next()??);
    if micros.len() != 6 {
        return None;
    }
    let us: u64 = micros.parse().ok()?;
    Some(((h * 60 + m) * 60 + sec) * 1_000_000_000 + us * 1_000)
}

/// `532ns`, `14.2µs`, `1.5ms`, `1.20s` → ns (the shown value).
fn parse_duration(s: &str) -> Option<u64> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ns") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("µs") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e6)
    } else {
        (s.strip_suffix('s')?, 1e9)
    };
    let v: f64 = num.parse().ok()?;
    Some((v * scale).round() as u64)
}

/// The text summary line (stderr, without `--json`):
/// `unlink-tracer: 33 lines; events 33, dropped 0, returns without entry 0,
/// entries never returned 0, lost entries not remembered 0, undecodable
/// records 0, kernel-reported missed 0` (or `... missed not reported by
/// this kernel`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextSummary {
    pub lines: u64,
    pub events: u64,
    pub dropped: u64,
    pub unpaired_returns: u64,
    pub inflight: u64,
    pub lost_untracked: u64,
    pub decode_errors: u64,
    /// None: `not reported by this kernel`.
    pub kernel_missed: Option<u64>,
}

/// The summary among the tracer's stderr lines (the last that parses).
pub fn parse_summary(stderr: &str) -> Option<TextSummary> {
    stderr.lines().rev().find_map(summary_line)
}

fn summary_line(line: &str) -> Option<TextSummary> {
    let rest = line.strip_prefix("unlink-tracer: ")?;
    let (lines, rest) = rest.split_once(" lines; ")?;
    let mut s = TextSummary {
        lines: lines.parse().ok()?,
        ..TextSummary::default()
    };
    let mut fields = rest.split(", ");
    let mut next = |name: &str| -> Option<String> {
        fields
            .next()?
            .strip_prefix(name)?
            .strip_prefix(' ')
            .map(str::to_string)
    };
    s.events = next("events")?.parse().ok()?;
    s.dropped = next("dropped")?.parse().ok()?;
    s.unpaired_returns = next("returns without entry")?.parse().ok()?;
    s.inflight = next("entries never returned")?.parse().ok()?;
    s.lost_untracked = next("lost entries not remembered")?.parse().ok()?;
    s.decode_errors = next("undecodable records")?.parse().ok()?;
    s.kernel_missed = match next("kernel-reported missed")?.as_str() {
        "not reported by this kernel" => None,
        n => Some(n.parse().ok()?),
    };
    Some(s)
}

/// What a text line can be off by: its time is truncated to the µs, its
/// latency rounded to one decimal of its unit (at most 0.05 ms shown as
/// ms; latencies of seconds are not expected).
pub const TEXT_RESOLUTION: Resolution = Resolution {
    time_ns: 1_000,
    latency_ns: 50_000,
};

/// A text line's time of day placed on the day of `near` (ns since the
/// epoch): the nearest such instant.
pub fn on_day_of(time_of_day_ns: u64, near: u64) -> u64 {
    const DAY: u64 = 86_400 * 1_000_000_000;
    let base = near - near % DAY + time_of_day_ns;
    [base.saturating_sub(DAY), base, base + DAY]
        .into_iter()
        .min_by_key(|t| t.abs_diff(near))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_summaries_parse() {
        let err = "unlink-tracer: kprobe mode on do_unlinkat s32 (s32 dfd, struct filename * name) (ret 32-bit); Ctrl-C to stop\n\
                   unlink-tracer: 33 lines; events 32, dropped 1, returns without entry 2, entries never returned 3, lost entries not remembered 4, undecodable records 5, kernel-reported missed not reported by this kernel\n";
        assert_eq!(
            parse_summary(err),
            Some(TextSummary {
                lines: 33,
                events: 32,
                dropped: 1,
                unpaired_returns: 2,
                inflight: 3,
                lost_untracked: 4,
                decode_errors: 5,
                kernel_missed: None,
            })
        );
        let sid = "unlink-tracer: 2 lines; events 2, dropped 0, returns without entry 0, entries never returned 0, lost entries not remembered 0, undecodable records 0, kernel-reported missed 7";
        assert_eq!(parse_summary(sid).map(|s| s.kernel_missed), Some(Some(7)));
        for bad in [
            "",
            "unlink-tracer: x lines; events 1",
            "unlink-tracer: 2 lines; events 2, dropped 0",
        ] {
            assert_eq!(parse_summary(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_parse_back_into_their_fields() {
        let e = parse_line(
            r#"01:02:03.000001 rm[345/346] do_unlinkat(AT_FDCWD, "missing") = -2 (ENOENT) <14.2µs>"#,
        )
        .unwrap();
        assert_eq!(
            (e.time_ns, e.pid, e.tid, e.comm.as_str(), e.dfd),
            (3_723_000_001_000, 345, 346, "rm", Some(-100))
        );
        assert_eq!(
            (e.filename.as_str(), e.ret, e.errno.as_deref(), e.latency_ns),
            ("missing", -2, Some("ENOENT"), 14_200)
        );
        assert_eq!(e.symbol, "do_unlinkat");
        let cases: [(&str, &str, bool, bool, i64, u64); 4] = [
            (
                r#"00:00:00.000000 a [b][1/2] f(3, "x \"y\"") = 0 <900ns>"#,
                r#"x \"y\""#,
                false,
                false,
                0,
                900,
            ),
            (
                r#"00:00:00.000000 g[1/2] f(AT_FDCWD, "ab"...<truncated>) = -21 (EISDIR) <1.5ms>"#,
                "ab",
                true,
                false,
                -21,
                1_500_000,
            ),
            (
                "00:00:00.000000 g[1/2] f(AT_FDCWD, <unreadable>) = 0 <2.00s>",
                "",
                false,
                true,
                0,
                2_000_000_000,
            ),
            (
                r#"00:00:00.000000 g[1/2] f(AT_FDCWD, "a) = 1 <x") = 0 <1.0µs>"#,
                "a) = 1 <x",
                false,
                false,
                0,
                1_000,
            ),
        ];
        for (line, name, trunc, unread, ret, lat) in cases {
            let e = parse_line(line).unwrap();
            assert_eq!(
                (
                    e.filename.as_str(),
                    e.filename_truncated,
                    e.filename_unreadable,
                    e.ret,
                    e.latency_ns
                ),
                (name, trunc, unread, ret, lat),
                "{line}"
            );
        }
        assert_eq!(
            parse_line(r#"00:00:00.000000 a [b][1/2] f(3, "x") = 0 <1ns>"#)
                .unwrap()
                .comm,
            "a [b]"
        );
        for bad in [
            "",
            "12:00 x",
            "00:00:00.000000 rm do_unlinkat(",
            "00:00:00.000000 g[1/2] f(AT_FDCWD, \"a) = 0 <1ns>",
            // The current directory's fd as a number, not AT_FDCWD.
            r#"00:00:00.000000 g[1/2] f(-100, "a") = 0 <1ns>"#,
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_of_day_land_on_the_nearest_day() {
        let day = 86_400 * 1_000_000_000u64;
        assert_eq!(on_day_of(5, 10 * day + 7), 10 * day + 5);
        assert_eq!(on_day_of(day - 1, 10 * day + 3), 10 * day - 1);
    }
}
