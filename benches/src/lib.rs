//! Criterion benchmarks (`cargo bench -p unlink-benches`). `benches/host.rs`
//! times the host-side hot paths: decoding ring buffer records, rendering
//! them as JSON lines (the tracer's per-event work), and parsing and
//! normalising a guest's trace (the harness's per-cell work).
