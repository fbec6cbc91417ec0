//! Booting a guest: vng command lines, deadlines, the console.

pub mod boot;
