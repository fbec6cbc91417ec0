//! The consumer side of the BPF ring buffer, read straight from the map's
//! mmap'ed pages: each record is handed out in place, as a slice of the
//! ring, and its space is given back to the kernel as soon as the caller is
//! done with it. No copy, and no callback through libbpf: this runs for
//! every record, twice per unlink.
//!
//! Layout (the kernel's `kernel/bpf/ringbuf.c`, as libbpf reads it): page 0
//! holds the consumer position (ours to write), page 1 the producer
//! position, then the data pages, mapped twice in a row so that a record
//! crossing the end of the ring is contiguous. A record is an 8-byte header
//! (length with a busy and a discard bit, page offset) and its bytes,
//! rounded up to 8.

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use thiserror::Error;

/// The producer is still writing this record.
const BUSY_BIT: u32 = 1 << 31;
/// The producer gave this record up: skip it.
const DISCARD_BIT: u32 = 1 << 30;
const HEADER: u64 = 8;

/// What went wrong with the ring (shown after "ring buffer: ").
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RingError {
    #[error("size {0} is not a power of two of at least a page")]
    Size(u32),
    #[error("cannot map its pages: {0}")]
    Map(nix::Error),
    #[error("waiting for records failed: {0}")]
    Wait(nix::Error),
    #[error("the record at position {pos} claims {len} bytes, more than the ring's {size}")]
    Corrupt { pos: u64, len: u32, size: u64 },
}

/// A BPF ring buffer map, mapped for reading.
pub struct Ring {
    fd: OwnedFd,
    page: usize,
    size: usize,
    consumer: NonNull<c_void>,
    producer: NonNull<c_void>,
}

impl Ring {
    /// Maps the ring buffer map `map` of `size` data bytes (its max_entries).
    pub fn open(map: BorrowedFd<'_>, size: u32) -> Result<Ring, RingError> {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| usize::try_from(p).ok())
            .unwrap_or(4096);
        if !size.is_power_of_two() || (size as usize) < page {
            return Err(RingError::Size(size));
        }
        let fd = nix::unistd::dup(map).map_err(RingError::Map)?;
        let size = size as usize;
        let len = |n: usize| NonZeroUsize::new(n).ok_or(RingError::Size(0));
        // SAFETY: fresh shared mappings of the map's own pages, at the
        // offsets and sizes the kernel defines for a ring buffer map.
        let consumer = unsafe {
            mmap(
                None,
                len(page)?,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd.as_fd(),
                0,
            )
        }
        .map_err(RingError::Map)?;
        // SAFETY: as above; the producer page and the data pages twice.
        let producer = unsafe {
            mmap(
                None,
                len(page + 2 * size)?,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                fd.as_fd(),
                page as i64,
            )
        };
        let producer = match producer {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: mapped just above, with this length, used by no one.
                let _ = unsafe { munmap(consumer, page) };
                return Err(RingError::Map(e));
            }
        };
        Ok(Ring {
            fd,
            page,
            size,
            consumer,
            producer,
        })
    }

    /// Waits up to `timeout` for the kernel to signal data; a signal ends
    /// the wait early without an error.
    pub fn wait(&self, timeout: Duration) -> Result<(), RingError> {
        wait_readable(self.fd.as_fd(), timeout).map_err(RingError::Wait)
    }

    /// Hands every complete record in the ring to `on_record`, oldest
    /// first, until the ring is empty or the next record is still being
    /// written; returns how many records it handed out.
    pub fn drain(&mut self, mut on_record: impl FnMut(&[u8])) -> Result<u64, RingError> {
        // SAFETY: both positions are u64s at the start of their pages,
        // which stay mapped while `self` lives; the kernel writes the
        // producer's, only we write the consumer's.
        let (cons_pos, prod_pos) = unsafe {
            (
                AtomicU64::from_ptr(self.consumer.as_ptr().cast()),
                AtomicU64::from_ptr(self.producer.as_ptr().cast()),
            )
        };
        // SAFETY: the data pages follow the producer page.
        let data = unsafe { self.producer.as_ptr().cast::<u8>().add(self.page) };
        let mask = self.size as u64 - 1;
        let mut cons = cons_pos.load(Ordering::Acquire);
        let mut handed = 0;
        loop {
            let prod = prod_pos.load(Ordering::Acquire);
            // SAFETY: `data` is the doubly mapped ring of `mask + 1` bytes.
            let (next, n) = unsafe {
                walk(data, mask, cons, prod, &mut on_record, &mut |c| {
                    cons_pos.store(c, Ordering::Release)
                })
            }?;
            handed += n;
            if next == cons {
                return Ok(handed);
            }
            cons = next;
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the two mappings made in `open`, with their lengths;
        // nothing borrowed from them outlives `self`.
        unsafe {
            let _ = munmap(self.consumer, self.page);
            let _ = munmap(self.producer, self.page + 2 * self.size);
        }
    }
}

/// Waits up to `timeout` for `fd` to be readable; a signal ends the wait
/// early without an error.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> nix::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(_) | Err(nix::Error::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The space a record of `len` bytes (header bits included) takes.
fn record_span(len: u32) -> u64 {
    let bytes = u64::from(len & !(BUSY_BIT | DISCARD_BIT)) + HEADER;
    (bytes + 7) & !7
}

/// Walks the records from position `cons` up to `prod`: hands each one
/// not discarded to `on_record`, then `publish`es the position after it
/// (its space is the kernel's again). Stops at a record still being
/// written. Returns the position reached and the records handed out.
///
/// # Safety
///
/// `data` points to `2 * (mask + 1)` readable bytes, 8-byte aligned, laid
/// out as a ring buffer's doubly mapped data pages; `mask + 1` is a power
/// of two.
unsafe fn walk(
    data: *const u8,
    mask: u64,
    mut cons: u64,
    prod: u64,
    on_record: &mut impl FnMut(&[u8]),
    publish: &mut impl FnMut(u64),
) -> Result<(u64, u64), RingError> {
    let size = mask + 1;
    let mut handed = 0;
    while cons < prod {
        let at = (cons & mask) as usize;
        // SAFETY: `at` < size and headers are 8-byte aligned; the kernel
        // writes the length last, with release semantics.
        let header = unsafe { AtomicU32::from_ptr(data.add(at).cast_mut().cast()) };
        let len = header.load(Ordering::Acquire);
        if len & BUSY_BIT != 0 {
            break;
        }
        let span = record_span(len);
        if span > size {
            return Err(RingError::Corrupt {
                pos: cons,
                len: len & !DISCARD_BIT,
                size,
            });
        }
        if len & DISCARD_BIT == 0 {
            let body = (len & !DISCARD_BIT) as usize;
            // SAFETY: at + 8 + body <= size + size: within the double map.
            let record = unsafe { std::slice::from_raw_parts(data.add(at + 8), body) };
            on_record(record);
            handed += 1;
        }
        cons += span;
        publish(cons);
    }
    Ok((cons, handed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of `size` data bytes, doubly "mapped" by mirroring.
    struct FakeRing {
        words: Vec<u64>,
        size: usize,
    }

    /// What a walk returned, the records it handed out, the positions it published.
    type Walked = (Result<(u64, u64), RingError>, Vec<Vec<u8>>, Vec<u64>);
    /// Records as (header bits, body), the records handed out, the index
    /// (in records written) the walk ends at.
    type StopCase<'a> = (&'a [(u32, &'a [u8])], usize, usize);

    impl FakeRing {
        fn new(size: usize) -> Self {
            FakeRing {
                words: vec![0; 2 * size / 8],
                size,
            }
        }

        fn bytes(&mut self) -> &mut [u8] {
            let n = self.words.len() * 8;
            // SAFETY: the Vec's own u64s, viewed as bytes.
            unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), n) }
        }

        /// Writes a record at position `pos` (wrapping) and mirrors it.
        fn put(&mut self, pos: u64, bits: u32, body: &[u8]) -> u64 {
            let size = self.size;
            let span = record_span(body.len() as u32);
            let mut rec = vec![0u8; span as usize];
            rec[0..4].copy_from_slice(&(body.len() as u32 | bits).to_ne_bytes());
            rec[8..8 + body.len()].copy_from_slice(body);
            let bytes = self.bytes();
            for (i, b) in rec.iter().enumerate() {
                let at = (pos as usize + i) % size;
                bytes[at] = *b;
                bytes[at + size] = *b;
            }
            pos + span
        }

        fn walk(&mut self, cons: u64, prod: u64) -> Walked {
            let mut seen = Vec::new();
            let mut published = Vec::new();
            let mask = self.size as u64 - 1;
            // SAFETY: 2 * size bytes of u64s, mirrored as the kernel maps them.
            let r = unsafe {
                walk(
                    self.words.as_ptr().cast(),
                    mask,
                    cons,
                    prod,
                    &mut |r: &[u8]| seen.push(r.to_vec()),
                    &mut |c| published.push(c),
                )
            };
            (r, seen, published)
        }
    }

    #[test]
    fn record_spans_round_up_to_eight_with_the_header() {
        let cases = [
            (0, 8),
            (1, 16),
            (8, 16),
            (24, 32),
            (48 + 20, 80),
            (24 | BUSY_BIT, 32),
            (24 | DISCARD_BIT, 32),
        ];
        for (len, want) in cases {
            assert_eq!(record_span(len), want, "len {len:#x}");
        }
    }

    #[test]
    fn walks_records_in_order_and_publishes_after_each() {
        let mut ring = FakeRing::new(256);
        let p1 = ring.put(0, 0, b"first record");
        let p2 = ring.put(p1, 0, &[7u8; 24]);
        let (r, seen, published) = ring.walk(0, p2);
        assert_eq!(r, Ok((p2, 2)));
        assert_eq!(seen, vec![b"first record".to_vec(), vec![7u8; 24]]);
        assert_eq!(published, vec![p1, p2]);
    }

    #[test]
    fn stops_at_a_busy_record_and_skips_discarded_ones() {
        let cases: [StopCase; 4] = [
            (&[(0, b"a"), (BUSY_BIT, b"b"), (0, b"c")], 1, 1),
            (&[(BUSY_BIT, b"a"), (0, b"b")], 0, 0),
            (&[(DISCARD_BIT, b"gone"), (0, b"kept")], 1, 2),
            (&[(0, b"x"), (DISCARD_BIT, b"y"), (DISCARD_BIT, b"z")], 1, 3),
        ];
        for (records, want_handed, want_end) in cases {
            let mut ring = FakeRing::new(256);
            let mut ends = vec![0];
            for (bits, body) in records {
                let next = ring.put(*ends.last().unwrap(), *bits, body);
                ends.push(next);
            }
            let prod = *ends.last().unwrap();
            let (r, seen, published) = ring.walk(0, prod);
            assert_eq!(r, Ok((ends[want_end], want_handed as u64)), "{records:?}");
            assert_eq!(seen.len(), want_handed, "{records:?}");
            assert_eq!(published, ends[1..=want_end].to_vec(), "{records:?}");
        }
    }

    #[test]
    fn a_record_across_the_end_of_the_ring_is_whole() {
        let mut ring = FakeRing::new(64);
        // Positions keep growing past the size; the record at 1000 starts
        // 40 bytes into the ring and runs 8 bytes past its end.
        let start = 1000 - 1000 % 64 + 40;
        let body = b"0123456789abcdefXYZ_wrap";
        let end = ring.put(start, 0, body);
        let (r, seen, _) = ring.walk(start, end);
        assert_eq!(r, Ok((end, 1)));
        assert_eq!(seen, vec![body.to_vec()]);
    }

    #[test]
    fn nothing_to_read_and_corrupt_lengths() {
        let mut ring = FakeRing::new(64);
        assert_eq!(ring.walk(128, 128).0, Ok((128, 0)));
        ring.bytes()[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(
            ring.walk(0, 8).0,
            Err(RingError::Corrupt {
                pos: 0,
                len: 1000,
                size: 64
            })
        );
    }
}
