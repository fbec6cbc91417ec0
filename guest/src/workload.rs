//! The workloads, as system calls through `nix` (no shell, no coreutils):
//! each call is recorded as a [`Step`] with the thread that made it and the
//! result the kernel gave back.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Barrier};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::unistd::mkdir;
use unlink_schema::{escape_bytes, Load, Step, PATH_MAX};

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

/// Where a call's path is resolved from.
#[derive(Clone, Copy)]
pub enum At<'a> {
    /// `unlink(2)`.
    Plain,
    Cwd,
    Dir(&'a OwnedFd),
    /// `unlinkat` with a raw descriptor that is not an open directory (a
    /// file's, or a closed one): `label` is how the trace shows it.
    Fd(i32, &'static str),
}

/// The path argument of a call.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Bytes(&'a [u8]),
    /// A pointer into no mapping: the kernel cannot copy the path (EFAULT).
    BadPointer,
}

/// One unlink-family call, made and recorded.
pub fn call(at: At, path: &[u8], removedir: bool) -> Step {
    call_with(
        at,
        Arg::Bytes(path),
        if removedir { AT_REMOVEDIR } else { 0 },
    )
}

/// `unlinkat`'s flag that makes it an rmdir.
pub const AT_REMOVEDIR: i32 = libc::AT_REMOVEDIR;

/// One call with any path argument and flags, made through libc exactly as
/// given (no validation on the way), and recorded.
pub fn call_with(at: At, arg: Arg, flags: i32) -> Step {
    let (cpath, bytes): (Option<CString>, &[u8]) = match arg {
        Arg::Bytes(b) => (CString::new(b).ok(), b),
        Arg::BadPointer => (None, b""),
    };
    // Page zero is never mapped: the kernel's copy of the path faults.
    let ptr = cpath
        .as_ref()
        .map_or(1 as *const libc::c_char, |c| c.as_ptr());
    let comm = comm();
    let start_ns = realtime_ns();
    // SAFETY: the pointer is a live C string or deliberately invalid; the
    // kernel validates it, nothing here dereferences it.
    let (op, dfd, dirfd, r) = unsafe {
        match at {
            At::Plain => ("unlink", None, None, libc::unlink(ptr)),
            At::Cwd => (
                "unlinkat",
                Some("AT_FDCWD"),
                None,
                libc::unlinkat(libc::AT_FDCWD, ptr, flags),
            ),
            At::Dir(fd) => (
                "unlinkat",
                Some("DIRFD"),
                Some(fd.as_raw_fd()),
                libc::unlinkat(fd.as_raw_fd(), ptr, flags),
            ),
            At::Fd(fd, label) => (
                "unlinkat",
                Some(label),
                Some(fd),
                libc::unlinkat(fd, ptr, flags),
            ),
        }
    };
    let ret = if r == 0 {
        0
    } else {
        -(Errno::last_raw() as i64)
    };
    let end_ns = realtime_ns();
    let op = match flags {
        0 => op.to_string(),
        AT_REMOVEDIR => format!("{op}(AT_REMOVEDIR)"),
        f => format!("{op}(flags {f:#x})"),
    };
    Step {
        op,
        dfd: dfd.map(str::to_string),
        dirfd,
        path: escape_bytes(bytes),
        path_len: bytes.len(),
        uid: nix::unistd::geteuid().as_raw(),
        pid: std::process::id(),
        tid: tid(),
        comm,
        start_ns,
        end_ns,
        ret,
        flags,
        bad_pointer: matches!(arg, Arg::BadPointer),
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

/// The tutorial, then one more call from a second thread: the tutorial's
/// `pid` is the thread group's, which the main thread alone cannot tell
/// from its thread id.
pub fn tutorial_threaded() -> Result<Vec<Step>> {
    let mut steps = tutorial()?;
    create(b"test3")?;
    let step = std::thread::spawn(|| call(At::Plain, b"test3", false))
        .join()
        .map_err(|_| anyhow::anyhow!("the tutorial's thread panicked"))?;
    steps.push(step);
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
/// AT_FDCWD, where `unlinkat(AT_REMOVEDIR)` and a refused flag go, and the
/// paths the kernel refuses before the unlink function sees a name (a bad
/// pointer, an empty path, a path of PATH_MAX bytes: it runs with an error
/// pointer, and the tracer must say the name was unreadable).
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
    // ENOTDIR: a file as a directory, by path and as the dirfd.
    create(b"plain")?;
    steps.push(call(At::Plain, b"plain/x", false));
    let file = open("plain", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .context("opening plain")?;
    steps.push(call(At::Fd(file.as_raw_fd(), "FILEFD"), b"x", false));
    // EBADF: a descriptor that is not open.
    steps.push(call(At::Fd(CLOSED_FD, "BADFD"), b"x", false));
    // ELOOP: a symlink to itself as a directory.
    nix::unistd::symlinkat("loop", nix::fcntl::AT_FDCWD, "loop").context("symlink loop")?;
    steps.push(call(At::Plain, b"loop/x", false));
    // EBUSY: a file that is a mount point.
    create(b"busy")?;
    create(b"busy-src")?;
    mount_on("busy-src", "busy", MsFlags::MS_BIND)?;
    steps.push(call(At::Plain, b"busy", false));
    nix::mount::umount("busy").context("umount busy")?;
    // EROFS: a file on a read-only mount.
    dir("ro", 0o755)?;
    mount_on("tmpfs", "ro", MsFlags::empty())?;
    create(b"ro/f")?;
    mount_on("tmpfs", "ro", MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY)?;
    steps.push(call(At::Plain, b"ro/f", false));
    nix::mount::umount("ro").context("umount ro")?;
    // A flag unlinkat does not know: EINVAL before the unlink function.
    create(b"flagged")?;
    steps.push(call_with(
        At::Cwd,
        Arg::Bytes(b"flagged"),
        libc::AT_SYMLINK_NOFOLLOW,
    ));
    // Names the kernel refuses before the function sees them: EFAULT,
    // ENOENT for an empty path, ENAMETOOLONG at PATH_MAX.
    steps.push(call_with(At::Plain, Arg::BadPointer, 0));
    steps.push(call(At::Plain, b"", false));
    steps.push(call(At::Plain, &deep_path(PATH_MAX), false));
    Ok(steps)
}

/// A descriptor number no test process has open.
const CLOSED_FD: i32 = 999;

/// `mount(src, target, "tmpfs", flags)`: a tmpfs, a bind, or a remount.
fn mount_on(src: &str, target: &str, flags: MsFlags) -> Result<()> {
    nix::mount::mount(Some(src), target, Some("tmpfs"), flags, Some("size=1m"))
        .with_context(|| format!("mount {src} on {target} ({flags:?})"))
}

/// A relative path of exactly `len` bytes made of 200-byte components
/// that need not exist (the call fails with ENOENT at the first one, after
/// the kernel has read the whole path).
pub fn deep_path(len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    while p.len() < len {
        if !p.is_empty() && p.len() % 201 == 200 {
            p.push(b'/');
        } else {
            p.push(b'p');
        }
    }
    p
}

/// Directories of 200 bytes, three deep: `d…d/d…d/d…d` (602 bytes), for the
/// paths at the tracer's buffer limit.
fn long_dirs() -> Result<String> {
    let seg = "d".repeat(200);
    let mut path = String::new();
    for _ in 0..3 {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&seg);
        dir(&path, 0o755)?;
    }
    Ok(path)
}

/// One byte class for the escaping: the byte(s), and a name that says which.
pub const ESCAPE_CLASSES: [(&[u8], &str); 15] = [
    (b"\\", "backslash"),
    (b"\"", "quote"),
    (b"\n", "newline"),
    (b"\t", "tab"),
    (b"\r", "cr"),
    (b"\x01", "control"),
    (b"\x1b", "escape"),
    (b"\x7f", "del"),
    (b"\xff", "invalid"),
    (b"\xe2\x82", "cut-utf8"),
    ("\u{85}".as_bytes(), "c1-control"),
    (b" ", "space"),
    ("\u{e9}".as_bytes(), "latin"),
    ("\u{540d}".as_bytes(), "cjk"),
    ("\u{1f642}".as_bytes(), "emoji"),
];

/// A name with `class` at its start, in its middle and at its end.
pub fn class_name(class: &[u8], label: &str) -> Vec<u8> {
    [class, label.as_bytes(), class, b"x", class].concat()
}

/// A comm with escape classes in it (15 bytes, the kernel's limit).
const ODD_COMM: &[u8] = b"\"c\\o\tm\nm\xff\x01e";

/// Names: the longest legal name, bytes that are not UTF-8, a newline and a
/// space, multi-byte UTF-8, a path longer than the tracer's buffer; then
/// each escape class at the start, middle and end of a name; path lengths
/// at each limit of the tracer's path read (the 8-byte word, the 64-byte
/// peek, the 512-byte buffer, one below and above each) and of the kernel
/// (PATH_MAX - 1); a truncation that cuts a UTF-8 character; and a call
/// from a thread whose comm needs escaping.
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
    let deep = long_dirs()?;
    let path = format!("{deep}/f");
    create(path.as_bytes())?;
    steps.push(call(At::Plain, path.as_bytes(), false));
    for (class, label) in ESCAPE_CLASSES {
        let name = class_name(class, label);
        create(&name)?;
        steps.push(call(At::Plain, &name, false));
    }
    // Path lengths (bytes, NUL not counted) around each limit of the
    // tracer's read: the word (8), the peek (64), the buffer (512 with the
    // NUL: 511 fit).
    for len in [7, 8, 9, 63, 64, 65] {
        let name = vec![b'w'; len];
        create(&name)?;
        steps.push(call(At::Plain, &name, false));
    }
    for len in [510, 511, 512, 513] {
        let mut p = deep.as_bytes()[..401].to_vec(); // two directories
        p.push(b'/');
        p.resize(len, b'b');
        create(&p)?;
        steps.push(call(At::Plain, &p, false));
    }
    // A 2-byte character across the buffer's end (bytes 510 and 511).
    let mut p = deep.as_bytes()[..401].to_vec();
    p.extend_from_slice(b"/");
    p.resize(510, b'c');
    p.extend_from_slice("\u{e9}\u{e9}".as_bytes());
    create(&p)?;
    steps.push(call(At::Plain, &p, false));
    // The longest path the kernel reads (ENOENT: its directories do not exist).
    steps.push(call(At::Plain, &deep_path(PATH_MAX - 1), false));
    // A thread whose comm holds escape classes.
    create(b"odd-comm")?;
    let step = std::thread::spawn(|| -> Result<Step> {
        let comm = CString::new(ODD_COMM).context("the odd comm")?;
        nix::sys::prctl::set_name(&comm).context("setting the odd comm")?;
        Ok(call(At::Plain, b"odd-comm", false))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the odd-comm thread panicked"))??;
    steps.push(step);
    Ok(steps)
}

/// Thread names of the callers scenario: short, the kernel's 15-byte
/// limit, one over it (the kernel keeps 15), and one with a tab.
pub const THREAD_NAMES: [&str; 4] = [
    "worker-1",
    "fifteen-bytes-x",
    "sixteen-bytes-xy",
    "tab\tname",
];

/// Who calls: the main thread; threads of this process whose names differ
/// from the process's (short, at the comm limit, over it, needing escapes),
/// one renaming itself between its calls; the main thread under a new
/// name; a second process; another uid; and two threads racing to unlink
/// the same files, so each path disappears during one of the two calls.
pub fn callers(agent: &Path) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    create(b"main-1")?;
    steps.push(call(At::Plain, b"main-1", false));
    for (i, name) in THREAD_NAMES.iter().enumerate() {
        let file = format!("thread-{i}");
        create(file.as_bytes())?;
        let name = CString::new(*name).context("a thread name")?;
        let made = std::thread::spawn(move || -> Result<Vec<Step>> {
            nix::sys::prctl::set_name(&name).context("naming the thread")?;
            let mut v = vec![call(At::Plain, file.as_bytes(), false)];
            v.push(call(At::Plain, file.as_bytes(), false));
            Ok(v)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("a caller thread panicked"))??;
        steps.extend(made);
    }
    // A thread that renames itself between its two calls.
    create(b"renamed-1")?;
    create(b"renamed-2")?;
    let made = std::thread::spawn(|| -> Result<Vec<Step>> {
        let mut v = vec![call(At::Plain, b"renamed-1", false)];
        nix::sys::prctl::set_name(c"renamed").context("renaming the thread")?;
        v.push(call(At::Plain, b"renamed-2", false));
        Ok(v)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the renaming thread panicked"))??;
    steps.extend(made);
    // The main thread under another name, then its own again.
    let own = nix::sys::prctl::get_name().context("the agent's comm")?;
    create(b"main-renamed")?;
    nix::sys::prctl::set_name(c"agent-renamed").context("renaming the agent")?;
    steps.push(call(At::Plain, b"main-renamed", false));
    nix::sys::prctl::set_name(&own).context("restoring the agent's comm")?;
    // A second process, as root and as nobody.
    create(b"child-root")?;
    steps.push(as_user(agent, 0, "child-root")?);
    steps.push(as_user(agent, NOBODY, "child-nobody-missing")?);
    // Two threads racing for each of RACES files: one unlinks it, the
    // other finds it gone (or gone mid-lookup).
    for i in 0..RACES {
        create(format!("race-{i}").as_bytes())?;
    }
    let start = Arc::new(Barrier::new(2));
    let racers: Vec<_> = ["racer-a", "racer-b"]
        .into_iter()
        .map(|name| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || -> Result<Vec<Step>> {
                let name = CString::new(name).context("a racer's name")?;
                nix::sys::prctl::set_name(&name).context("naming a racer")?;
                let mut v = Vec::new();
                for i in 0..RACES {
                    start.wait();
                    v.push(call(At::Plain, format!("race-{i}").as_bytes(), false));
                }
                Ok(v)
            })
        })
        .collect();
    for r in racers {
        steps.extend(
            r.join()
                .map_err(|_| anyhow::anyhow!("a racer panicked"))??,
        );
    }
    steps.extend(across_clock_steps()?);
    Ok(steps)
}

/// How far the wall clock is stepped, seconds.
pub const CLOCK_STEP_S: i64 = 3_600;
/// Long enough for the tracer to drain and read the clock again (it does
/// both at least every 100 ms), with room for a late wakeup under TCG.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Calls after the wall clock is stepped an hour forward, then back: the
/// tracer's time_ns must follow each step.
fn across_clock_steps() -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (by, name) in [
        (CLOCK_STEP_S, "after-step-forward"),
        (-CLOCK_STEP_S, "after-step-back"),
    ] {
        std::thread::sleep(SETTLE);
        step_clock(by)?;
        std::thread::sleep(SETTLE);
        create(name.as_bytes())?;
        steps.push(call(At::Plain, name.as_bytes(), false));
    }
    Ok(steps)
}

fn step_clock(by_s: i64) -> Result<()> {
    use nix::time::{clock_gettime, clock_settime, ClockId};
    let now = clock_gettime(ClockId::CLOCK_REALTIME).context("reading the wall clock")?;
    let then = nix::sys::time::TimeSpec::new(now.tv_sec() + by_s, now.tv_nsec());
    clock_settime(ClockId::CLOCK_REALTIME, then).context("stepping the wall clock")
}

/// Files the two racers of [`callers`] fight over.
pub const RACES: usize = 8;

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
        held: 0,
        fill_calls: 0,
        bpf_stats: false,
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
