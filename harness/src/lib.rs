//! The VM harness: boots Debian kernels under QEMU through virtme-ng, runs
//! the unlink tracer and its workloads inside each, checks the normalised
//! trace against reviewed snapshots and reports per cell.
//!
//! Stages, one folder each: [`kernels`] (fetch) → [`images`] (guest
//! binaries and roots) → [`vm`] (vng, deadlines, console) → trace (the
//! `unlink-guest` agent, in the guest) → [`gate`] (normalise, check; or,
//! for `harness overhead`, [`overhead`]: measure) → [`report`].
//! [`engine`] drives the stages and emits events; only the binary's CLI
//! prints. [`mutants`] plants bugs in the tracer for the gate to catch.

pub mod cache;
pub mod engine;
pub mod gate;
pub mod host;
pub mod images;
pub mod kernels;
pub mod model;
pub mod mutants;
pub mod overhead;
pub mod paths;
pub mod process;
pub mod report;
pub mod vm;

/// `harness::normalise`, the path the host benches use.
pub use gate::normalise;
