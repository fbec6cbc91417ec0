//! The unlink tracer: a kprobe/kretprobe (or fentry/fexit) pair on the
//! kernel's unlink path, each call's entry and return joined in user space
//! into one event.
//!
//! Data flow: [`target`] reads the running kernel's BTF ([`btf`]) to pick the
//! function and its prototype, [`probe`] loads and attaches the BPF object
//! and drains its ring buffer ([`ring`]), [`event`] decodes each record and
//! renders each call, [`pair`] joins a thread's entry with its return;
//! [`retprobe`] attaches a return probe with instances of its own.

pub mod btf;
pub mod event;
pub mod pair;
pub mod probe;
pub mod retprobe;
pub mod ring;
pub mod target;

/// The generated libbpf-rs skeleton of `bpf/unlink.bpf.c`.
#[allow(clippy::all, missing_docs, unsafe_op_in_unsafe_fn)]
pub mod skel {
    include!(concat!(env!("OUT_DIR"), "/unlink.skel.rs"));
}
