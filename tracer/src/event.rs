//! Decoding of the ring buffer records (`struct entry_rec` and `struct
//! return_rec` in `bpf/unlink.h`), the joined [`Event`] of one call, and its
//! two renderings: a text line and a JSON object.

use std::mem::{offset_of, size_of};

use thiserror::Error;

use crate::skel::types::{entry_rec, return_rec};

/// The layouts are `bpf/unlink.h`'s, through the skeleton's generated types:
/// every offset below is taken from them, none is written by hand.
mod at {
    use super::*;
    pub const KIND: usize = offset_of!(entry_rec, kind);
    pub const TID: usize = offset_of!(entry_rec, tid);
    pub const PID: usize = offset_of!(entry_rec, pid);
    pub const DFD: usize = offset_of!(entry_rec, dfd);
    pub const TS: usize = offset_of!(entry_rec, ts_ns);
    pub const FLAGS: usize = offset_of!(entry_rec, flags);
    pub const NAME_LEN: usize = offset_of!(entry_rec, name_len);
    pub const COMM: usize = offset_of!(entry_rec, comm);
    pub const RET_TID: usize = offset_of!(return_rec, tid);
    pub const RET_TS: usize = offset_of!(return_rec, ts_ns);
    pub const RET: usize = offset_of!(return_rec, ret);
    // Both records start with their kind.
    const _: () = assert!(KIND == 0 && offset_of!(return_rec, kind) == 0);
}

/// `COMM_LEN` of `bpf/unlink.h` (the comm runs up to the filename).
pub const COMM_LEN: usize = ENTRY_HEADER - at::COMM;
/// `FNAME_MAX` of `bpf/unlink.h`.
pub const FNAME_MAX: usize = unlink_schema::FILENAME_BUF;
/// `offsetof(struct entry_rec, filename)`.
pub const ENTRY_HEADER: usize = offset_of!(entry_rec, filename);
/// `sizeof(struct entry_rec)`.
pub const ENTRY_SIZE: usize = size_of::<entry_rec>();
/// `sizeof(struct return_rec)`.
pub const RETURN_SIZE: usize = size_of::<return_rec>();
// The schema's filename buffer is the BPF side's; the comm the kernel's.
const _: () = assert!(ENTRY_SIZE == ENTRY_HEADER + FNAME_MAX);
const _: () = assert!(COMM_LEN == 16);

const REC_ENTRY: u32 = 1;
const REC_RETURN: u32 = 2;

pub const EV_FNAME_TRUNCATED: u32 = 1 << 0;
pub const EV_FNAME_FAULT: u32 = 1 << 1;
pub const EV_NO_DFD: u32 = 1 << 2;

/// `AT_FDCWD` as the kernel passes it.
pub const AT_FDCWD: i32 = -100;

/// One unlink call: its entry joined with its return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// What the entry probe sent. Borrows the record's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRecord<'a> {
    pub tid: u32,
    pub pid: u32,
    pub dfd: Option<i32>,
    pub ts_ns: u64,
    pub truncated: bool,
    pub fault: bool,
    /// Up to the first NUL.
    pub comm: &'a [u8],
    /// Without its NUL.
    pub filename: &'a [u8],
}

/// What the return probe sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnRecord {
    pub tid: u32,
    pub ts_ns: u64,
    pub ret: i64,
}

/// One ring buffer record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    Entry(EntryRecord<'a>),
    Return(ReturnRecord),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes has no kind")]
    NoKind(usize),
    #[error("record kind {0} is unknown")]
    UnknownKind(u32),
    #[error("record of kind {kind} has {len} bytes, expected {want}")]
    Short { kind: u32, len: usize, want: usize },
    #[error("entry record says its path has {0} bytes, the buffer holds {FNAME_MAX}")]
    NameLength(i32),
}

/// The 16-byte comm up to its first NUL, found a word at a time (this runs
/// for every call).
fn comm_at(b: &[u8]) -> &[u8] {
    let Ok(bytes) = <[u8; COMM_LEN]>::try_from(b) else {
        return b;
    };
    // Little-endian: byte i of the slice is bits 8i..8i+8. The lowest set
    // bit of `zero` marks the first zero byte exactly (carries only run up).
    let v = u128::from_le_bytes(bytes);
    let zero = v.wrapping_sub(0x0101_0101_0101_0101_0101_0101_0101_0101)
        & !v
        & 0x8080_8080_8080_8080_8080_8080_8080_8080;
    let n = if zero == 0 {
        COMM_LEN
    } else {
        zero.trailing_zeros() as usize / 8
    };
    &b[..n]
}

impl<'a> Record<'a> {
    /// Decodes one ring buffer record.
    #[inline]
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        if b.len() < 4 {
            return Err(DecodeError::NoKind(b.len()));
        }
        let kind = u32_at(at::KIND);
        let want = match kind {
            REC_ENTRY => ENTRY_HEADER,
            REC_RETURN => RETURN_SIZE,
            other => return Err(DecodeError::UnknownKind(other)),
        };
        let short = |want| DecodeError::Short {
            kind,
            len: b.len(),
            want,
        };
        if b.len() < want {
            return Err(short(want));
        }
        if kind == REC_RETURN {
            return Ok(Record::Return(ReturnRecord {
                tid: u32_at(at::RET_TID),
                ts_ns: u64_at(at::RET_TS),
                ret: u64_at(at::RET) as i64,
            }));
        }
        let flags = u32_at(at::FLAGS);
        let name_len = u32_at(at::NAME_LEN) as i32;
        let name = usize::try_from(name_len)
            .ok()
            .filter(|&n| n <= FNAME_MAX)
            .ok_or(DecodeError::NameLength(name_len))?;
        if b.len() < ENTRY_HEADER + name {
            return Err(short(ENTRY_HEADER + name));
        }
        Ok(Record::Entry(EntryRecord {
            tid: u32_at(at::TID),
            pid: u32_at(at::PID),
            dfd: (flags & EV_NO_DFD == 0).then_some(u32_at(at::DFD) as i32),
            ts_ns: u64_at(at::TS),
            truncated: flags & EV_FNAME_TRUNCATED != 0,
            fault: flags & EV_FNAME_FAULT != 0,
            comm: comm_at(&b[at::COMM..at::COMM + COMM_LEN]),
            // name_len counts the NUL the kernel wrote after the path (a
            // truncated path fills the buffer, NUL included): no scan needed.
            filename: &b[ENTRY_HEADER..ENTRY_HEADER + name.saturating_sub(1)],
        }))
    }
}

/// An entry record as the BPF side writes it (comm `rm`, dfd AT_FDCWD),
/// its unwritten bytes filled with junk: for tests and benches.
pub fn encode_entry(
    tid: u32,
    pid: u32,
    ts_ns: u64,
    flags: u32,
    name: &[u8],
    name_len: i32,
) -> Vec<u8> {
    let mut b = vec![0xAAu8; ENTRY_SIZE];
    b[0..4].copy_from_slice(&REC_ENTRY.to_ne_bytes());
    b[4..8].copy_from_slice(&tid.to_ne_bytes());
    b[8..12].copy_from_slice(&pid.to_ne_bytes());
    b[12..16].copy_from_slice(&AT_FDCWD.to_ne_bytes());
    b[16..24].copy_from_slice(&ts_ns.to_ne_bytes());
    b[24..28].copy_from_slice(&flags.to_ne_bytes());
    b[28..32].copy_from_slice(&name_len.to_ne_bytes());
    b[32..48].fill(0);
    b[32..34].copy_from_slice(b"rm");
    let name = &name[..name.len().min(FNAME_MAX - 1)];
    b[48..48 + name.len()].copy_from_slice(name);
    b[48 + name.len()] = 0;
    b
}

/// A return record as the BPF side writes it: for tests and benches.
pub fn encode_return(tid: u32, ts_ns: u64, ret: i64) -> Vec<u8> {
    let mut b = vec![0u8; RETURN_SIZE];
    b[0..4].copy_from_slice(&REC_RETURN.to_ne_bytes());
    b[4..8].copy_from_slice(&tid.to_ne_bytes());
    b[8..16].copy_from_slice(&ts_ns.to_ne_bytes());
    b[16..24].copy_from_slice(&ret.to_ne_bytes());
    b
}

impl Event {
    /// Overwrites `self` with `entry`, reusing its buffers; the return
    /// fields are zeroed until [`Event::complete`].
    #[inline]
    pub fn fill_entry(&mut self, entry: &EntryRecord<'_>) {
        self.ts_ns = entry.ts_ns;
        self.latency_ns = 0;
        self.ret = 0;
        self.pid = entry.pid;
        self.tid = entry.tid;
        self.dfd = entry.dfd;
        self.comm.clear();
        self.comm.extend_from_slice(entry.comm);
        self.filename.clear();
        self.filename.extend_from_slice(entry.filename);
        self.truncated = entry.truncated;
        self.fault = entry.fault;
    }

    /// Joins the return of the call whose entry `self` holds.
    pub fn complete(&mut self, ret: &ReturnRecord) {
        self.ret = ret.ret;
        self.latency_ns = ret.ts_ns.saturating_sub(self.ts_ns);
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

    fn entry_record(flags: u32, name: &[u8], name_len: i32) -> Vec<u8> {
        encode_entry(346, 345, 1_000, flags, name, name_len)
    }

    fn return_record(ret: i64) -> Vec<u8> {
        encode_return(346, 15_200, ret)
    }

    /// The call an entry record with `flags` and `name` and a return of
    /// `ret` join into.
    fn event(ret: i64, flags: u32, name: &[u8]) -> Event {
        let entry = entry_record(flags, name, name.len() as i32 + 1);
        let Ok(Record::Entry(entry)) = Record::decode(&entry) else {
            panic!("entry record did not decode")
        };
        let Ok(Record::Return(ret)) = Record::decode(&return_record(ret)) else {
            panic!("return record did not decode")
        };
        let mut e = Event::default();
        e.fill_entry(&entry);
        e.complete(&ret);
        e
    }

    #[test]
    fn decode_reads_every_field_at_its_offset() {
        assert_eq!(
            event(-2, 0, b"test1"),
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
        let flagged = event(0, 0b111, b"x");
        assert_eq!(
            (flagged.truncated, flagged.fault, flagged.dfd),
            (true, true, None)
        );
    }

    #[test]
    fn decode_errors() {
        let short_entry = entry_record(0, b"abc", 4);
        let cases: [(Vec<u8>, DecodeError); 5] = [
            (vec![1, 0], DecodeError::NoKind(2)),
            (7u32.to_ne_bytes().to_vec(), DecodeError::UnknownKind(7)),
            (
                return_record(0)[..20].to_vec(),
                DecodeError::Short {
                    kind: REC_RETURN,
                    len: 20,
                    want: RETURN_SIZE,
                },
            ),
            (entry_record(0, b"", 600), DecodeError::NameLength(600)),
            (
                short_entry[..50].to_vec(),
                DecodeError::Short {
                    kind: REC_ENTRY,
                    len: 50,
                    want: 52,
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(Record::decode(&bytes), Err(want));
        }
    }

    #[test]
    fn only_the_written_part_of_an_entry_is_read() {
        // (record, the bytes the BPF side wrote: header and path with its NUL)
        let cases: [(Vec<u8>, usize); 3] = [
            (entry_record(0, b"abc", 4), ENTRY_HEADER + 4),
            (entry_record(2, b"", -14), ENTRY_HEADER),
            (entry_record(0, b"", 1), ENTRY_HEADER + 1),
        ];
        for (bytes, written) in cases {
            // The prefix decodes like the whole record: the stale bytes
            // after the path are never read.
            assert_eq!(Record::decode(&bytes[..written]), Record::decode(&bytes));
        }
    }

    #[test]
    fn comm_ends_at_its_first_nul() {
        let cases: [(&[u8; 16], &[u8]); 5] = [
            (b"rm\0\0\0\0\0\0\0\0\0\0\0\0\0\0", b"rm"),
            (b"\0rm\0\0\0\0\0\0\0\0\0\0\0\0\0", b""),
            (b"fifteen-bytes-x\0", b"fifteen-bytes-x"),
            (b"sixteen-bytes-xy", b"sixteen-bytes-xy"),
            (b"\x01\x80\xff\0\x01\0\0\0\0\0\0\0\0\0\0\0", b"\x01\x80\xff"),
        ];
        for (raw, want) in cases {
            assert_eq!(comm_at(raw), want, "{raw:?}");
        }
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
            let e = event(ret, flags, name);
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
