//! The VM harness: boots Debian kernels under QEMU through virtme-ng, runs
//! the unlink tracer and its workloads inside each, checks the normalised
//! trace against reviewed snapshots and reports per cell.
//!
//! Stages, one module each: [`kernel`] (fetch, with [`apt`]) → [`image`]
//! (guest binaries) → [`boot`] (vng, deadlines, console) → trace (the
//! `unlink-guest` agent, in the guest) → [`normalise`] → [`check`] (or,
//! for `harness overhead`, [`overhead`]: measure) → [`report`] (and
//! [`chart`]). [`matrix`] drives the stages and emits events; only
//! `main.rs` prints.

pub mod accel;
pub mod apt;
pub mod boot;
pub mod cache;
pub mod chart;
pub mod check;
pub mod cmd;
pub mod console;
pub mod doctor;
pub mod gate;
pub mod image;
pub mod kernel;
pub mod lock;
pub mod manifest;
pub mod matrix;
pub mod normalise;
pub mod overhead;
pub mod overhead_report;
pub mod report;
pub mod rootfs;
pub mod setup;
