//! Decoding of the ring buffer records (`struct unlink_event` in
//! `bpf/unlink.h`) and their two renderings: a text line and a JSON object.

use thiserror::Error;

pub const COMM_LEN: usize = 16;
/// `FNAME_MAX` of `bpf/unlink.h`.
pub const FNAME_MAX: usize = unlink_schema::FILENAME_BUF;
pub const EVENT_SIZE: usize = 56 + FNAME_MAX;

const EV_FNAME_TRUNCATED: u32 = 1 << 0;
const EV_FNAME_FAULT: u32 = 1 << 1;
const EV_NO_DFD: u32 = 1 << 2;

/// `AT_FDCWD` as the kernel passes it.
pub const AT_FDCWD: i32 = -100;

/// One unlink call: its entry joined with its return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Entry time, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub latency_ns: u64,
    pub ret: i64,
    pub pid: u32,
    pub tid: u32,
    pub dfd: Option<i32>,
    pub comm: Vec<u8>,
    pub filename: Vec<u8>,
    /// The path was longer than the tracer's buffer; `filename` holds its start.
    pub truncated: bool,
    /// The path could not be read at entry.
    pub fault: bool,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("event record of {0} bytes, expected {EVENT_SIZE}")]
pub struct DecodeError(pub usize);

fn until_nul(b: &[u8]) -> Vec<u8> {
    b.iter().copied().take_while(|&c| c != 0).collect()
}

impl Event {
    /// Decodes one ring buffer record.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < EVENT_SIZE {
            return Err(DecodeError(b.len()));
        }
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let flags = u32_at(36);
        Ok(Event {
            ts_ns: u64_at(0),
            latency_ns: u64_at(8),
            ret: u64_at(16) as i64,
            pid: u32_at(24),
            tid: u32_at(28),
            dfd: (flags & EV_NO_DFD == 0).then_some(u32_at(32) as i32),
            comm: until_nul(&b[40..40 + COMM_LEN]),
            filename: until_nul(&b[56..56 + FNAME_MAX]),
            truncated: flags & EV_FNAME_TRUNCATED != 0,
            fault: flags & EV_FNAME_FAULT != 0,
        })
    }

    /// The errno name of a negative return (`ENOENT` for -2).
    pub fn errno_name(&self) -> Option<String> {
        errno_name(self.ret)
    }
}

/// `-2` → `ENOENT`; `None` for non-negative or unknown values.
pub fn errno_name(ret: i64) -> Option<String> {
    if !(-4095..0).contains(&ret) {
        return None;
    }
    let e = nix::errno::Errno::from_raw(-ret as i32);
    (e != nix::errno::Errno::UnknownErrno).then(|| format!("{e:?}"))
}

pub use unlink_schema::escape_bytes;

/// `1234` → `1.2µs`, `15_300_000` → `15.3ms`.
pub fn format_duration_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// `ret` with its errno name: `0`, `-2 (ENOENT)`.
pub fn format_ret(ret: i64) -> String {
    match errno_name(ret) {
        Some(name) => format!("{ret} ({name})"),
        None => ret.to_string(),
    }
}

fn format_dfd(dfd: Option<i32>) -> String {
    match dfd {
        Some(AT_FDCWD) => "AT_FDCWD".into(),
        Some(fd) => fd.to_string(),
        None => "-".into(),
    }
}

/// Wall-clock time of day (UTC) as `HH:MM:SS.micros`.
pub fn format_time_of_day(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1_000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        day / 3600,
        (day / 60) % 60,
        day % 60
    )
}

/// One call as a text line, strace-like:
/// `23:41:07.123456 rm[345/345] do_unlinkat(AT_FDCWD, "test1") = -2 (ENOENT) <14.2µs>`
pub fn text_line(e: &Event, symbol: &str, unix_ns: u64) -> String {
    let name = if e.fault {
        "<unreadable>".to_string()
    } else if e.truncated {
        format!("\"{}\"...<truncated>", escape_bytes(&e.filename))
    } else {
        format!("\"{}\"", escape_bytes(&e.filename))
    };
    format!(
        "{} {}[{}/{}] {}({}, {}) = {} <{}>",
        format_time_of_day(unix_ns),
        escape_bytes(&e.comm),
        e.pid,
        e.tid,
        symbol,
        format_dfd(e.dfd),
        name,
        format_ret(e.ret),
        format_duration_ns(e.latency_ns)
    )
}

pub use unlink_schema::JsonEvent;

/// The JSON-lines record of one call.
pub fn json_event(e: &Event, symbol: &str, unix_ns: u64) -> JsonEvent {
    JsonEvent {
        time_ns: unix_ns,
        pid: e.pid,
        tid: e.tid,
        comm: escape_bytes(&e.comm),
        dfd: e.dfd,
        filename: escape_bytes(&e.filename),
        filename_truncated: e.truncated,
        filename_unreadable: e.fault,
        ret: e.ret,
        errno: e.errno_name(),
        latency_ns: e.latency_ns,
        symbol: symbol.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ret: i64, flags: u32, name: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; EVENT_SIZE];
        b[0..8].copy_from_slice(&1_000u64.to_ne_bytes());
        b[8..16].copy_from_slice(&14_200u64.to_ne_bytes());
        b[16..24].copy_from_slice(&ret.to_ne_bytes());
        b[24..28].copy_from_slice(&345u32.to_ne_bytes());
        b[28..32].copy_from_slice(&346u32.to_ne_bytes());
        b[32..36].copy_from_slice(&AT_FDCWD.to_ne_bytes());
        b[36..40].copy_from_slice(&flags.to_ne_bytes());
        b[40..42].copy_from_slice(b"rm");
        b[56..56 + name.len()].copy_from_slice(name);
        b
    }

    #[test]
    fn decode_reads_every_field_at_its_offset() {
        let e = Event::decode(&record(-2, 0, b"test1")).unwrap();
        assert_eq!(
            e,
            Event {
                ts_ns: 1_000,
                latency_ns: 14_200,
                ret: -2,
                pid: 345,
                tid: 346,
                dfd: Some(AT_FDCWD),
                comm: b"rm".to_vec(),
                filename: b"test1".to_vec(),
                truncated: false,
                fault: false,
            }
        );
        let flagged = Event::decode(&record(0, 0b111, b"x")).unwrap();
        assert_eq!(
            (flagged.truncated, flagged.fault, flagged.dfd),
            (true, true, None)
        );
        assert_eq!(Event::decode(&[0; 10]), Err(DecodeError(10)));
    }

    #[test]
    fn text_lines() {
        let cases: [(i64, u32, &[u8], &str); 4] = [
            (
                0,
                0,
                b"test1",
                r#"rm[345/346] do_unlinkat(AT_FDCWD, "test1") = 0 <14.2µs>"#,
            ),
            (
                -2,
                0,
                b"missing",
                r#"rm[345/346] do_unlinkat(AT_FDCWD, "missing") = -2 (ENOENT) <14.2µs>"#,
            ),
            (
                -21,
                1,
                b"abc",
                r#"rm[345/346] do_unlinkat(AT_FDCWD, "abc"...<truncated>) = -21 (EISDIR) <14.2µs>"#,
            ),
            (
                0,
                2,
                b"",
                "rm[345/346] do_unlinkat(AT_FDCWD, <unreadable>) = 0 <14.2µs>",
            ),
        ];
        for (ret, flags, name, want) in cases {
            let e = Event::decode(&record(ret, flags, name)).unwrap();
            let line = text_line(&e, "do_unlinkat", 3_723_000_001_000);
            assert_eq!(line, format!("01:02:03.000001 {want}"));
        }
    }

    #[test]
    fn escaping_is_visible_and_unambiguous() {
        let cases: [(&[u8], &str); 7] = [
            (b"plain", "plain"),
            (b"a b", "a b"),
            (b"new\nline", "new\\nline"),
            (b"back\\slash\"q", "back\\\\slash\\\"q"),
            (b"\xff\xfeok", "\\xff\\xfeok"),
            ("h\u{e9}llo\u{1f980}".as_bytes(), "h\u{e9}llo\u{1f980}"),
            (b"\x01\x7f", "\\x01\\x7f"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_bytes(input), want, "{input:?}");
        }
        // A literal backslash-x sequence differs from the escaped byte.
        assert_ne!(escape_bytes(b"\\xff"), escape_bytes(b"\xff"));
    }

    #[test]
    fn errno_names() {
        let cases = [
            (0, None),
            (3, None),
            (-2, Some("ENOENT")),
            (-13, Some("EACCES")),
            (-36, Some("ENAMETOOLONG")),
            (4294967294, None),
        ];
        for (ret, want) in cases {
            assert_eq!(errno_name(ret).as_deref(), want, "{ret}");
        }
    }

    #[test]
    fn durations() {
        let cases = [
            (999, "999ns"),
            (14_249, "14.2µs"),
            (15_300_000, "15.3ms"),
            (2_500_000_000, "2.50s"),
        ];
        for (ns, want) in cases {
            assert_eq!(format_duration_ns(ns), want);
        }
    }
}
