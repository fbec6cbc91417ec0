//! The kernel's unlink path, as a guest measures it (`harness overhead`
//! runs this binary inside every guest, once per probe mode and round):
//!
//! - `unlink/create_unlink`: create a file on tmpfs, then unlink it;
//! - `unlink/unlink_missing`: unlink a name that does not exist (ENOENT).
//!
//! Files live in `UNLINK_BENCH_DIR` (the agent points it at a guest-local
//! tmpfs); a probe on the unlink path makes both dearer by what it costs.
//! Run on a host it measures the host's own unlink path.

use std::ffi::CString;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::unlink;

fn bench_dir() -> PathBuf {
    std::env::var_os("UNLINK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn c_path(dir: &std::path::Path, name: &str) -> CString {
    let p = dir.join(format!("{name}-{}", std::process::id()));
    CString::new(p.into_os_string().into_encoded_bytes()).expect("a path without NUL")
}

fn unlink_path(c: &mut Criterion) {
    let dir = bench_dir();
    let file = c_path(&dir, "bench-file");
    let missing = c_path(&dir, "bench-missing");
    let mut group = c.benchmark_group("unlink");
    group.bench_function("create_unlink", |b| {
        b.iter(|| {
            let fd = open(
                file.as_c_str(),
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .expect("creating the bench file");
            drop(fd);
            unlink(file.as_c_str()).expect("unlinking the bench file");
        })
    });
    group.bench_function("unlink_missing", |b| {
        b.iter(|| {
            assert_eq!(unlink(missing.as_c_str()), Err(Errno::ENOENT));
        })
    });
    group.finish();
}

criterion_group!(benches, unlink_path);
criterion_main!(benches);
