//! Compiles `bpf/unlink.bpf.c` with clang and generates its libbpf-rs
//! skeleton into OUT_DIR. The skeleton is never committed.

use std::env;
use std::path::PathBuf;

use anyhow::{Context, Result};
use libbpf_cargo::SkeletonBuilder;

fn main() -> Result<()> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("..");
    let bpf_dir = root.join("bpf");
    let src = bpf_dir.join("unlink.bpf.c");
    let out = PathBuf::from(env::var("OUT_DIR")?).join("unlink.skel.rs");

    for file in ["unlink.bpf.c", "unlink.h", "vmlinux.h"] {
        println!("cargo:rerun-if-changed={}", bpf_dir.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=BPF_CLANG");

    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang".to_string());
    if which(&clang).is_none() {
        anyhow::bail!(
            "`{clang}` not found: the BPF program needs clang. \
             Run `cargo run -p unlink-harness -- setup` (or `apt-get install clang llvm libelf-dev zlib1g-dev pkg-config`)"
        );
    }

    // __TARGET_ARCH_* is derived by libbpf-cargo from CARGO_CFG_TARGET_ARCH,
    // so a cross build for aarch64 gets arm64 register names.
    SkeletonBuilder::new()
        .source(&src)
        .clang(&clang)
        .clang_args([
            "-I".as_ref(),
            bpf_dir.as_os_str(),
            "-Wall".as_ref(),
            "-Werror".as_ref(),
            "-Wno-unused-function".as_ref(),
        ])
        .build_and_generate(&out)
        .with_context(|| format!("building {}", src.display()))?;
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    let candidate = PathBuf::from(program);
    if candidate.components().count() > 1 {
        return candidate.is_file().then_some(candidate);
    }
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
