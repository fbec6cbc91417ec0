//! Threads held inside the traced function, as many as wanted, for as long
//! as wanted: a `getdents64` of a directory takes the directory's lock
//! (shared) and copies its first entry into a buffer registered with
//! userfaultfd, so the copy faults and waits for this process to supply the
//! page, lock still held. Every `unlink` in that directory then enters the
//! unlink function (its entry probe fires) and sleeps on the lock inside
//! it, until [`Held::release`] supplies the page.
//!
//! The storm uses it to have more calls open inside the function than
//! there are CPUs, deterministically: their return records then meet a full
//! ring (and, before 6.2 without CONFIG_PREEMPTION, more calls are open
//! than a kretprobe has return instances).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;

const PAGE: usize = 4096;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

const UFFD_API: u64 = 0xAA;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
nix::ioctl_readwrite!(uffdio_api, 0xAA, 0x3F, UffdioApi);
nix::ioctl_readwrite!(uffdio_register, 0xAA, 0x00, UffdioRegister);
nix::ioctl_readwrite!(uffdio_copy, 0xAA, 0x03, UffdioCopy);

/// An anonymous page, unmapped on drop.
struct Page(*mut libc::c_void);

// SAFETY: the page is only an address handed to the kernel; no Rust code
// reads or writes it.
unsafe impl Send for Page {}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: mapped by `Held::lock`, PAGE bytes, unmapped once.
        unsafe { libc::munmap(self.0, PAGE) };
    }
}

/// A directory whose lock a `getdents64` holds.
pub struct Held {
    uffd: OwnedFd,
    page: Page,
    reader: Option<JoinHandle<i64>>,
}

impl Held {
    /// Takes `dir`'s lock: returns once the `getdents64` waits on its
    /// fault, lock held.
    pub fn lock(dir: &str) -> Result<Held> {
        // SAFETY: plain syscalls; every result is checked.
        let uffd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) };
        if uffd < 0 {
            return Err(Errno::last()).context("userfaultfd (needs root and CONFIG_USERFAULTFD)");
        }
        // SAFETY: a fresh descriptor, owned from here.
        let uffd = unsafe { OwnedFd::from_raw_fd(uffd as i32) };
        let mut api = UffdioApi {
            api: UFFD_API,
            features: 0,
            ioctls: 0,
        };
        // SAFETY: the struct is the kernel's uffdio_api.
        unsafe { uffdio_api(uffd.as_raw_fd(), &mut api) }.context("UFFDIO_API")?;
        // SAFETY: an anonymous private page, checked below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Errno::last()).context("mmap");
        }
        let page = Page(addr);
        let mut reg = UffdioRegister {
            range: UffdioRange {
                start: addr as u64,
                len: PAGE as u64,
            },
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        // SAFETY: the struct is the kernel's uffdio_register.
        unsafe { uffdio_register(uffd.as_raw_fd(), &mut reg) }.context("UFFDIO_REGISTER")?;

        let path = CString::new(dir).context("the directory's name")?;
        let at = addr as usize;
        let reader = std::thread::spawn(move || {
            // SAFETY: open/getdents64/close on a buffer of PAGE bytes; the
            // buffer's first write faults into the userfaultfd.
            unsafe {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                );
                if fd < 0 {
                    return -1;
                }
                let n = libc::syscall(libc::SYS_getdents64, fd, at as *mut libc::c_void, PAGE);
                libc::close(fd);
                n
            }
        });
        // The fault arrives once getdents64 is inside, lock taken.
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&uffd),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(10_000u16))
            .context("waiting for the fault")?;
        if ready == 0 {
            bail!("getdents64 of {dir} did not fault into the userfaultfd within 10 s");
        }
        let mut msg = [0u8; 32];
        let n = nix::unistd::read(&uffd, &mut msg).context("reading the fault")?;
        if n != msg.len() || msg[0] != 0x12 {
            bail!(
                "userfaultfd: expected a page fault message, got {n} bytes, event {:#x}",
                msg[0]
            );
        }
        Ok(Held {
            uffd,
            page,
            reader: Some(reader),
        })
    }

    /// Supplies the page: the `getdents64` finishes and drops the lock.
    pub fn release(mut self) -> Result<()> {
        let zeros = vec![0u8; PAGE];
        let mut copy = UffdioCopy {
            dst: self.page.0 as u64,
            src: zeros.as_ptr() as u64,
            len: PAGE as u64,
            mode: 0,
            copy: 0,
        };
        // SAFETY: the struct is the kernel's uffdio_copy; src lives across the call.
        unsafe { uffdio_copy(self.uffd.as_raw_fd(), &mut copy) }.context("UFFDIO_COPY")?;
        let n = self
            .reader
            .take()
            .context("released twice")?
            .join()
            .map_err(|_| anyhow::anyhow!("the getdents64 thread panicked"))?;
        if n < 0 {
            bail!("getdents64 of the held directory failed");
        }
        Ok(())
    }
}

/// Waits until every thread of `tids` sleeps (state `D`: on the held
/// lock), or fails after `within`.
pub fn wait_blocked(tids: &[i32], within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let running: Vec<i32> = tids
            .iter()
            .copied()
            .filter(|t| thread_state(*t) != Some('D'))
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} threads did not block on the held directory within {within:?}",
                running.len(),
                tids.len()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The state letter of one of this process's threads.
fn thread_state(tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // `tid (comm) S ...`: the state follows the comm's closing parenthesis.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// `n` calls held inside the unlink function: each of `n` threads unlinks
/// a file of its own in a held directory, enters the function and sleeps
/// on the directory's lock until [`HeldCalls::finish`].
pub struct HeldCalls {
    held: Held,
    threads: Vec<JoinHandle<bool>>,
}

impl HeldCalls {
    /// Returns once every call is inside the function, asleep.
    pub fn start(n: u32) -> Result<HeldCalls> {
        let dir = "held";
        std::fs::create_dir_all(dir).context("mkdir held")?;
        for i in 0..n {
            crate::workload::create(format!("{dir}/h{i}").as_bytes())?;
        }
        let held = Held::lock(dir)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let threads: Vec<JoinHandle<bool>> = (0..n)
            .map(|i| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(nix::unistd::gettid().as_raw());
                    nix::unistd::unlink(format!("{dir}/h{i}").as_str()).is_ok()
                })
            })
            .collect();
        let tids: Vec<i32> = rx.iter().take(n as usize).collect();
        let calls = HeldCalls { held, threads };
        if let Err(e) = wait_blocked(&tids, Duration::from_secs(20)) {
            let _ = calls.finish();
            return Err(e);
        }
        Ok(calls)
    }

    /// Lets the calls go on and waits for them; how many failed.
    pub fn finish(self) -> Result<u64> {
        self.held.release()?;
        let mut failures = 0;
        for t in self.threads {
            if !t.join().unwrap_or(false) {
                failures += 1;
            }
        }
        Ok(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this host (root, userfaultfd): an unlink in the held directory
    /// waits until release, then succeeds.
    #[test]
    fn an_unlink_waits_for_the_release() {
        if nix::unistd::geteuid().as_raw() != 0 {
            eprintln!("skipped: userfaultfd for kernel faults needs root");
            return;
        }
        let dir = tempfile_dir();
        let file = format!("{dir}/f");
        std::fs::write(&file, b"").unwrap();
        let held = Held::lock(&dir).expect("the lock is taken");
        let (tx, rx) = std::sync::mpsc::channel();
        let unlinker = std::thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw()).unwrap();
            nix::unistd::unlink(file.as_str())
        });
        let tid = rx.recv().unwrap();
        wait_blocked(&[tid], Duration::from_secs(10)).expect("the unlink blocks");
        assert!(std::path::Path::new(&format!("{dir}/f")).exists());
        held.release().expect("released");
        assert_eq!(unlinker.join().unwrap(), Ok(()));
        assert!(!std::path::Path::new(&format!("{dir}/f")).exists());
        std::fs::remove_dir(&dir).unwrap();
    }

    fn tempfile_dir() -> String {
        let d = std::env::temp_dir().join(format!("held-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.display().to_string()
    }
}
