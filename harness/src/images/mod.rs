//! What a guest runs: the guest binaries, and the root of a foreign arch.

pub mod image;
pub mod rootfs;
