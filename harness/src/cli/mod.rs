//! The commands of `harness`, one module each (its arguments and its
//! `run`), and what they share: the selection and its usage errors, one
//! engine run, the rendering of the engine's events. The binary's crate
//! root carries the print lints' opt-out: this is the code that prints.

pub mod args;
pub mod clean;
pub mod doctor;
pub mod exec;
pub mod lock;
pub mod matrix;
pub mod mutants;
pub mod overhead;
pub mod render;
pub mod run;
pub mod selection;
pub mod setup;
pub mod signals;
pub mod test;

/// One line on stderr, `harness: MSG`.
pub fn note(msg: &str) {
    eprintln!("harness: {msg}");
}
