//! Host-side hot paths, per event: what the tracer does for every ring
//! buffer record, and what the harness does for every trace line.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use harness::normalise::{self, Step, TracerSummary};
use unlink_tracer::event::{json_event, Event, EVENT_SIZE};

/// A ring buffer record as the BPF program writes it (`bpf/unlink.h`).
fn record(pid: u32, ret: i64, name: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; EVENT_SIZE];
    b[0..8].copy_from_slice(&1_000u64.to_ne_bytes());
    b[8..16].copy_from_slice(&14_200u64.to_ne_bytes());
    b[16..24].copy_from_slice(&(ret as u64).to_ne_bytes());
    b[24..28].copy_from_slice(&pid.to_ne_bytes());
    b[28..32].copy_from_slice(&pid.to_ne_bytes());
    b[32..36].copy_from_slice(&(-100i32 as u32).to_ne_bytes());
    b[40..42].copy_from_slice(b"rm");
    b[56..56 + name.len()].copy_from_slice(name);
    b
}

/// A workload of `n` calls and the tracer's JSON lines for them.
fn workload(n: usize) -> (Vec<Step>, String) {
    let mut steps = Vec::with_capacity(n);
    let mut lines = String::new();
    for i in 0..n {
        let name = format!("s0-{i}");
        let ret = if i % 10 == 0 { -2 } else { 0 };
        let e = Event::decode(&record(700, ret, name.as_bytes())).expect("record");
        lines.push_str(&serde_json::to_string(&json_event(&e, "do_unlinkat", 1)).expect("json"));
        lines.push('\n');
        steps.push(Step {
            op: "unlink".into(),
            dfd: None,
            dirfd: None,
            path: name.clone(),
            path_len: name.len(),
            uid: 0,
            pid: 700,
            tid: 700,
            ret,
        });
    }
    (steps, lines)
}

fn tracer_side(c: &mut Criterion) {
    let rec = record(345, -2, b"some/dir/test1");
    let mut g = c.benchmark_group("tracer");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode", |b| b.iter(|| Event::decode(black_box(&rec))));
    let e = Event::decode(&rec).expect("record");
    g.bench_function("json_line", |b| {
        b.iter(|| serde_json::to_string(&json_event(black_box(&e), "do_unlinkat", 1)))
    });
    g.finish();
}

fn harness_side(c: &mut Criterion) {
    let (steps, lines) = workload(1_000);
    let mut g = c.benchmark_group("harness");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("parse_events_1000", |b| {
        b.iter(|| normalise::parse_events(black_box(&lines)))
    });
    let events = normalise::parse_events(&lines).expect("events");
    g.bench_function("normalise_1000", |b| {
        b.iter_batched(
            TracerSummary::default,
            |s| normalise::normalise(black_box(&steps), black_box(&events), &s),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, tracer_side, harness_side);
criterion_main!(benches);
