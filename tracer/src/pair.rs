//! Joins each thread's entry record with its return record into one
//! [`Event`] per call. Records of one thread reach the ring buffer in the
//! order they were made, so a return belongs to the last open entry of its
//! thread. No allocation per call: each thread's slot, buffers included, is
//! reused by its next call.

use rustc_hash::FxHashMap;

use crate::event::{Event, Record};

/// Slots kept before the closed ones are evicted (threads come and go).
const EVICT_ABOVE: usize = 4096;

/// What pairing saw so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Calls joined: entry and return both received.
    pub events: u64,
    /// Return records with no open entry on their thread.
    pub unpaired_returns: u64,
    /// Open entries replaced by their thread's next entry: their return
    /// never came (missed by the kernel, or its record was lost).
    pub superseded: u64,
    /// Records that did not decode (a layout mismatch; never expected).
    pub decode_errors: u64,
}

#[derive(Debug, Default)]
struct Slot {
    open: bool,
    /// Its `tid` is the slot's thread: a slot is made by an entry.
    event: Event,
}

/// The per-thread join.
#[derive(Debug)]
pub struct Pairer {
    slots: Vec<Slot>,
    /// Thread → its slot in `slots`.
    index: FxHashMap<u32, usize>,
    /// The slot touched last: a return usually follows its own entry, and
    /// a thread's calls come in runs, so most records find their slot here
    /// without hashing.
    last: usize,
    evict_above: usize,
    stats: PairStats,
}

impl Default for Pairer {
    fn default() -> Self {
        Pairer {
            slots: Vec::new(),
            index: FxHashMap::default(),
            last: 0,
            evict_above: EVICT_ABOVE,
            stats: PairStats::default(),
        }
    }
}

impl Pairer {
    /// Takes one ring buffer record; a completed call goes to `on_event`.
    pub fn push(&mut self, record: &[u8], on_event: &mut dyn FnMut(&Event)) {
        match Record::decode(record) {
            Err(_) => self.stats.decode_errors += 1,
            Ok(Record::Entry(entry)) => {
                let at = match self.find(entry.tid) {
                    Some(at) => at,
                    None => self.add(entry.tid),
                };
                self.last = at;
                let slot = &mut self.slots[at];
                if slot.open {
                    self.stats.superseded += 1;
                }
                slot.event.fill_entry(&entry);
                slot.open = true;
            }
            Ok(Record::Return(ret)) => match self.find(ret.tid) {
                Some(at) if self.slots[at].open => {
                    self.last = at;
                    let slot = &mut self.slots[at];
                    slot.open = false;
                    slot.event.complete(&ret);
                    self.stats.events += 1;
                    on_event(&slot.event);
                }
                _ => self.stats.unpaired_returns += 1,
            },
        }
    }

    /// The slot of thread `tid`, if it has one.
    #[inline]
    fn find(&self, tid: u32) -> Option<usize> {
        match self.slots.get(self.last) {
            Some(s) if s.event.tid == tid => Some(self.last),
            _ => self.index.get(&tid).copied(),
        }
    }

    /// A new slot for thread `tid`, evicting closed slots first when many
    /// threads have passed.
    fn add(&mut self, tid: u32) -> usize {
        if self.slots.len() >= self.evict_above {
            self.slots.retain(|s| s.open);
            self.index.clear();
            for (at, s) in self.slots.iter().enumerate() {
                self.index.insert(s.event.tid, at);
            }
            // Many threads really are inside the call: grow instead of
            // scanning again on every entry.
            self.evict_above = EVICT_ABOVE.max(2 * self.slots.len());
        }
        let at = self.slots.len();
        self.slots.push(Slot {
            open: false,
            event: Event {
                tid,
                ..Event::default()
            },
        });
        self.index.insert(tid, at);
        at
    }

    /// Entries still waiting for their return.
    pub fn open_entries(&self) -> u64 {
        self.slots.iter().filter(|s| s.open).count() as u64
    }

    pub fn stats(&self) -> PairStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{encode_entry, encode_return};

    fn entry(tid: u32, ts: u64, name: &[u8]) -> Vec<u8> {
        encode_entry(tid, 7, ts, 0, name, name.len() as i32 + 1)
    }

    fn ret(tid: u32, ts: u64, ret: i64) -> Vec<u8> {
        encode_return(tid, ts, ret)
    }

    /// One joined call: tid, path, ret, latency.
    type Call = (u32, String, i64, u64);

    /// Feeds the records; returns the joined calls, the stats and the
    /// entries left open.
    fn check(records: &[Vec<u8>]) -> (Vec<Call>, PairStats, u64) {
        let mut p = Pairer::default();
        let mut out = Vec::new();
        for r in records {
            p.push(r, &mut |e| {
                out.push((
                    e.tid,
                    String::from_utf8_lossy(&e.filename).into_owned(),
                    e.ret,
                    e.latency_ns,
                ))
            });
        }
        (out, p.stats(), p.open_entries())
    }

    #[test]
    fn joins_per_thread() {
        // (case, records, joined calls, stats, entries left open)
        type Case = (
            &'static str,
            Vec<Vec<u8>>,
            Vec<(u32, &'static str, i64, u64)>,
            PairStats,
            u64,
        );
        let cases: Vec<Case> = vec![
            (
                "one call",
                vec![entry(5, 100, b"a"), ret(5, 130, -2)],
                vec![(5, "a", -2, 30)],
                PairStats {
                    events: 1,
                    ..Default::default()
                },
                0,
            ),
            (
                "two threads interleaved",
                vec![
                    entry(5, 100, b"a"),
                    entry(6, 110, b"bb"),
                    ret(6, 150, 0),
                    ret(5, 200, 0),
                ],
                vec![(6, "bb", 0, 40), (5, "a", 0, 100)],
                PairStats {
                    events: 2,
                    ..Default::default()
                },
                0,
            ),
            (
                "a return without entry",
                vec![ret(5, 100, 0)],
                vec![],
                PairStats {
                    unpaired_returns: 1,
                    ..Default::default()
                },
                0,
            ),
            (
                "a missed return: the next entry supersedes",
                vec![entry(5, 100, b"a"), entry(5, 200, b"b"), ret(5, 210, 0)],
                vec![(5, "b", 0, 10)],
                PairStats {
                    events: 1,
                    superseded: 1,
                    ..Default::default()
                },
                0,
            ),
            (
                "a second return for one entry",
                vec![entry(5, 100, b"a"), ret(5, 110, 0), ret(5, 120, 0)],
                vec![(5, "a", 0, 10)],
                PairStats {
                    events: 1,
                    unpaired_returns: 1,
                    ..Default::default()
                },
                0,
            ),
            (
                "still open at the end",
                vec![entry(5, 100, b"a")],
                vec![],
                PairStats::default(),
                1,
            ),
            (
                "undecodable",
                vec![vec![9, 0, 0, 0], vec![1]],
                vec![],
                PairStats {
                    decode_errors: 2,
                    ..Default::default()
                },
                0,
            ),
        ];
        for (name, records, want, want_stats, want_open) in cases {
            let (got, stats, open) = check(&records);
            let want: Vec<_> = want
                .into_iter()
                .map(|(t, n, r, l)| (t, n.to_string(), r, l))
                .collect();
            assert_eq!((got, stats, open), (want, want_stats, want_open), "{name}");
        }
    }

    #[test]
    fn a_reused_slot_holds_no_trace_of_the_longer_name_before() {
        let (got, _, _) = check(&[
            entry(5, 1, b"a-long-name"),
            ret(5, 2, 0),
            entry(5, 3, b"x"),
            ret(5, 4, 0),
        ]);
        assert_eq!(got[1].1, "x");
    }

    #[test]
    fn closed_slots_are_evicted_once_many_threads_passed() {
        let mut p = Pairer::default();
        // A thread still inside the call while thousands of others pass.
        let inside = u32::MAX;
        p.push(&entry(inside, 1, b"slow"), &mut |_| {});
        for tid in 0..(EVICT_ABOVE as u32 + 10) {
            p.push(&entry(tid, 1, b"f"), &mut |_| {});
            p.push(&ret(tid, 2, 0), &mut |_| {});
        }
        assert!(p.slots.len() < 20, "{} slots kept", p.slots.len());
        assert_eq!(p.index.len(), p.slots.len());
        let mut joined = Vec::new();
        p.push(&ret(inside, 9, 0), &mut |e| joined.push(e.filename.clone()));
        assert_eq!(joined, vec![b"slow".to_vec()]);
        assert_eq!(p.stats().events, EVICT_ABOVE as u64 + 11);
    }
}
