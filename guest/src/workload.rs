//! The workloads, as system calls through `nix` (no shell, no coreutils):
//! each call is recorded as a [`Step`] with the thread that made it and the
//! result the kernel gave back.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Barrier};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{mkdir, unlinkat, UnlinkatFlags};
use unlink_schema::{escape_bytes, Load, Step};

/// The uid of `nobody`, for the permission errors.
pub const NOBODY: u32 = 65534;

fn tid() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

/// CLOCK_REALTIME in ns since the Unix epoch (the clock the tracer's
/// `time_ns` is on).
pub fn realtime_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_REALTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// The calling thread's comm as the kernel knows it, escaped.
pub fn comm() -> String {
    nix::sys::prctl::get_name()
        .map(|c| escape_bytes(c.as_bytes()))
        .unwrap_or_default()
}

fn ret_of(r: nix::Result<()>) -> i64 {
    match r {
        Ok(()) => 0,
        Err(e) => -(e as i64),
    }
}

/// Where a call's path is resolved from.
#[derive(Clone, Copy)]
pub enum At<'a> {
    /// `unlink(2)`.
    Plain,
    Cwd,
    Dir(&'a OwnedFd),
}

/// One unlink-family call, made and recorded.
pub fn call(at: At, path: &[u8], removedir: bool) -> Step {
    let p = Path::new(OsStr::from_bytes(path));
    let flags = if removedir {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    let comm = comm();
    let start_ns = realtime_ns();
    let (op, dfd, dirfd, r) = match at {
        At::Plain => ("unlink", None, None, ret_of(nix::unistd::unlink(p))),
        At::Cwd => (
            "unlinkat",
            Some("AT_FDCWD"),
            None,
            ret_of(unlinkat(nix::fcntl::AT_FDCWD, p, flags)),
        ),
        At::Dir(fd) => (
            "unlinkat",
            Some("DIRFD"),
            Some(fd.as_raw_fd()),
            ret_of(unlinkat(fd, p, flags)),
        ),
    };
    let end_ns = realtime_ns();
    Step {
        op: if removedir {
            format!("{op}(AT_REMOVEDIR)")
        } else {
            op.to_string()
        },
        dfd: dfd.map(str::to_string),
        dirfd,
        path: escape_bytes(path),
        path_len: path.len(),
        uid: nix::unistd::geteuid().as_raw(),
        pid: std::process::id(),
        tid: tid(),
        comm,
        start_ns,
        end_ns,
        ret: r,
    }
}

/// Creates an empty file (the `touch` of the tutorial).
pub fn create(path: &[u8]) -> Result<()> {
    let p = Path::new(OsStr::from_bytes(path));
    let fd = open(
        p,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .with_context(|| format!("creating {}", escape_bytes(path)))?;
    drop(fd);
    Ok(())
}

fn dir(path: &str, mode: u32) -> Result<()> {
    match mkdir(path, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("mkdir {path}")),
    }
    // mkdir honours the umask; set the bits (sticky included) exactly.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .with_context(|| format!("chmod {path}"))
}

/// The tutorial: touch/rm of test1 and test2, then an unlink of a file that
/// does not exist.
pub fn tutorial() -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for name in [&b"test1"[..], b"test2"] {
        create(name)?;
        steps.push(call(At::Plain, name, false));
    }
    steps.push(call(At::Plain, b"missing", false));
    Ok(steps)
}

/// Runs one call as `uid` in a child process (`unlink-guest as-user`), so
/// the permission checks are the kernel's own.
fn as_user(agent: &Path, uid: u32, path: &str) -> Result<Step> {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(agent)
        .args(["as-user", "--unlink", path])
        .uid(uid)
        .gid(uid)
        .output()
        .context("running a call as another user")?;
    anyhow::ensure!(
        out.status.success(),
        "the call as uid {uid} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice(&out.stdout).context("the step of the call as another user")
}

/// The errors: each errno the unlink path can give, dirfd against
/// AT_FDCWD, and where `unlinkat(AT_REMOVEDIR)` goes.
pub fn errors(agent: &Path) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    steps.push(call(At::Plain, b"missing", false));
    dir("dir", 0o755)?;
    steps.push(call(At::Plain, b"dir", false));
    dir("private", 0o755)?;
    create(b"private/f")?;
    steps.push(as_user(agent, NOBODY, "private/f")?);
    dir("sticky", 0o1777)?;
    create(b"sticky/f")?;
    steps.push(as_user(agent, NOBODY, "sticky/f")?);
    steps.push(call(At::Plain, "x".repeat(256).as_bytes(), false));
    dir("sub", 0o755)?;
    create(b"sub/a")?;
    create(b"sub/b")?;
    dir("sub/d", 0o755)?;
    let fd = open(
        "sub",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("opening sub/")?;
    steps.push(call(At::Dir(&fd), b"a", false));
    steps.push(call(At::Cwd, b"sub/b", false));
    steps.push(call(At::Dir(&fd), b"d", true));
    Ok(steps)
}

/// Names: the longest legal name, bytes that are not UTF-8, a newline and a
/// space, multi-byte UTF-8, and a path longer than the tracer's buffer.
pub fn names() -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let long_name = "n".repeat(255).into_bytes();
    let cases: Vec<Vec<u8>> = vec![
        long_name,
        b"bad\xff\xfebytes".to_vec(),
        b"new\nline and space".to_vec(),
        "ünïcødé-名前-🙂".as_bytes().to_vec(),
    ];
    for name in &cases {
        create(name)?;
        steps.push(call(At::Plain, name, false));
    }
    // Three 200-byte directories deep and a file: a 604-byte path, longer
    // than the tracer's buffer.
    let seg = "d".repeat(200);
    let mut path = String::new();
    for _ in 0..3 {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&seg);
        dir(&path, 0o755)?;
    }
    path.push_str("/f");
    create(path.as_bytes())?;
    steps.push(call(At::Plain, path.as_bytes(), false));
    Ok(steps)
}

/// `threads` threads, each creating and unlinking `per_thread` files of
/// its own in the current directory.
pub fn storm(threads: u32, per_thread: u32) -> Load {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut failures = 0u64;
                for i in 0..per_thread {
                    let name = format!("s{t}-{i}");
                    if create(name.as_bytes()).is_err()
                        || nix::unistd::unlink(name.as_str()).is_err()
                    {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();
    let failures = handles.into_iter().map(|h| h.join().unwrap_or(1)).sum();
    load(threads, per_thread, failures)
}

fn load(threads: u32, per_thread: u32, failures: u64) -> Load {
    Load {
        threads,
        calls_per_thread: per_thread,
        calls: u64::from(threads) * u64::from(per_thread),
        failures,
        pid: std::process::id(),
        consumer_paused: false,
    }
}

/// Files for [`contention`], made before the tracer starts.
pub fn contention_setup(threads: u32, per_thread: u32) -> Result<()> {
    dir("contended", 0o755)?;
    for t in 0..threads {
        for i in 0..per_thread {
            create(format!("contended/c{t}-{i}").as_bytes())?;
        }
    }
    Ok(())
}

/// `threads` threads released at once, all unlinking in one directory:
/// they queue on its lock and sleep inside the traced function.
pub fn contention(threads: u32, per_thread: u32) -> Load {
    let start = Arc::new(Barrier::new(threads as usize));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                (0..per_thread)
                    .filter(|i| {
                        nix::unistd::unlink(format!("contended/c{t}-{i}").as_str()).is_err()
                    })
                    .count() as u64
            })
        })
        .collect();
    let failures = handles.into_iter().map(|h| h.join().unwrap_or(1)).sum();
    load(threads, per_thread, failures)
}

/// `unlink-guest as-user --unlink PATH`: one call, its step as JSON on stdout.
pub fn as_user_main(path: &str) -> Result<()> {
    let step = call(At::Plain, path.as_bytes(), false);
    println!("{}", serde_json::to_string(&step)?);
    Ok(())
}
