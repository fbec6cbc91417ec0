//! Host-side hot paths, per event: what the tracer does for every ring
//! buffer record, and what the harness does for every trace line.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use harness::normalise::{self, Step, TracerSummary};
use unlink_tracer::event::{encode_entry, encode_return, json_event, Event};
use unlink_tracer::pair::Pairer;

/// The call `pid` made on `name`, as the tracer joins it from its records.
fn joined(pid: u32, ret: i64, name: &[u8]) -> Event {
    let mut out = Event::default();
    let mut p = Pairer::default();
    p.push(
        &encode_entry(pid, pid, 1_000, 0, name, name.len() as i32 + 1),
        &mut |_| {},
    );
    p.push(&encode_return(pid, 15_200, ret), &mut |e| out = e.clone());
    out
}

/// A workload of `n` calls and the tracer's JSON lines for them.
fn workload(n: usize) -> (Vec<Step>, String) {
    let mut steps = Vec::with_capacity(n);
    let mut lines = String::new();
    for i in 0..n {
        let name = format!("s0-{i}");
        let ret = if i % 10 == 0 { -2 } else { 0 };
        let e = joined(700, ret, name.as_bytes());
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
            comm: "rm".into(),
            start_ns: 0,
            end_ns: 2,
            ret,
            flags: 0,
            bad_pointer: false,
        });
    }
    (steps, lines)
}

fn tracer_side(c: &mut Criterion) {
    let name = b"some/dir/test1";
    let entry = encode_entry(345, 345, 1_000, 0, name, name.len() as i32 + 1);
    let ret = encode_return(345, 15_200, -2);
    let mut g = c.benchmark_group("tracer");
    g.throughput(Throughput::Elements(1));
    // Per call: its entry and return records decoded and joined.
    let mut pairer = Pairer::default();
    g.bench_function("decode_and_pair", |b| {
        b.iter(|| {
            let mut n = 0u32;
            pairer.push(black_box(&entry), &mut |_| {});
            pairer.push(black_box(&ret), &mut |e| n += e.tid);
            n
        })
    });
    let e = joined(345, -2, name);
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
