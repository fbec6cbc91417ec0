//! The engine: runs a [`Plan`] of cells (kernel × arch), each through the
//! stages fetch → root → boot → trace → check (or measure), `plan.jobs`
//! cells at a time, and reports typed [`MatrixEvent`]s on a channel. It
//! never prints.
//!
//! Each stage returns its outcome as a value; [`cell`] turns them into the
//! cell's row, its status taken from the one [`CellFailure`] that stopped
//! it (or Pass).

mod cell;
mod check;
mod events;
mod exec;
mod failure;
mod guest;
mod measure;
mod plan;
mod pool;
mod prefetch;

pub use events::{MatrixEvent, Stage};
pub use exec::exec_command;
pub use failure::CellFailure;
pub use guest::GUEST_OUT;
pub use plan::{CellSpec, DeadlineOverrides, GuestImage, Job, Plan};
pub use pool::run;
pub use prefetch::{Note, Prefetch};
