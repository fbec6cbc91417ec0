//! The cold start: what a cell needs before it boots and that does not
//! depend on the guest binaries — its kernel, and for a foreign arch the
//! guest root — starts on threads of its own as soon as the cells are
//! known, so downloads, extraction and the root build overlap the cargo
//! builds, the KVM probe and the first cells.
//!
//! Each piece is done once. A cell that reaches its kernel before the
//! prefetcher has started it fetches it itself; one that reaches it while
//! it is under way waits for that result. A failed fetch or build is the
//! failure of every cell that needs it: nothing is tried a second time,
//! so a flaky mirror shows as a failure, never as a slow pass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::images::rootfs::{self, GuestRoot};
use crate::kernels::kernel::{KernelImage, KernelSource};

/// Where the prefetcher's progress goes (the binary prints it).
pub type Note = Arc<dyn Fn(&str) + Send + Sync>;

/// One cell's kernel.
struct KernelSlot {
    /// `alias/arch`, for progress lines.
    name: String,
    source: KernelSource,
    state: Mutex<SlotState>,
    ready: Condvar,
}

enum SlotState {
    Waiting,
    /// Someone (the prefetcher or the cell) is fetching it.
    Taken,
    /// The outcome, error included (`{e:#}`).
    Done(Box<std::result::Result<KernelImage, String>>),
}

struct Shared {
    cache: PathBuf,
    kernels: Vec<KernelSlot>,
    /// Guest roots by recipe, built once; the map is held while one builds,
    /// so a second asker waits for it.
    roots: Mutex<HashMap<PathBuf, std::result::Result<GuestRoot, String>>>,
    /// Recipes whose root has no outcome yet.
    roots_pending: Mutex<Vec<PathBuf>>,
}

/// The cold-start work of one run, under way.
pub struct Prefetch {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Prefetch {
    /// Starts fetching `kernels` (one per cell, in plan order; `name` is
    /// `alias/arch`) on one thread, and building each root `recipe` on a
    /// thread of its own.
    pub fn start(
        cache: &Path,
        kernels: Vec<(String, KernelSource)>,
        recipes: Vec<PathBuf>,
        note: Note,
    ) -> Prefetch {
        let shared = Arc::new(Shared {
            cache: cache.to_path_buf(),
            kernels: kernels
                .into_iter()
                .map(|(name, source)| KernelSlot {
                    name,
                    source,
                    state: Mutex::new(SlotState::Waiting),
                    ready: Condvar::new(),
                })
                .collect(),
            roots: Mutex::new(HashMap::new()),
            roots_pending: Mutex::new(recipes.clone()),
        });
        let mut threads = Vec::new();
        for recipe in recipes {
            let (shared, note) = (shared.clone(), note.clone());
            threads.push(std::thread::spawn(move || {
                let started = Instant::now();
                let n = note.clone();
                let r = shared.root(&recipe, &move |t: &str| n(t));
                note(&match r {
                    Ok(_) => format!(
                        "guest root {} ready in {:.0} s",
                        recipe_name(&recipe),
                        started.elapsed().as_secs_f64()
                    ),
                    Err(e) => format!("guest root {}: {e:#}", recipe_name(&recipe)),
                });
            }));
        }
        let kernel_thread = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let total = shared.kernels.len();
                for (i, slot) in shared.kernels.iter().enumerate() {
                    if crate::process::stop::cancelled().is_some() {
                        return;
                    }
                    let started = Instant::now();
                    let n = note.clone();
                    let Some(r) = shared.take_and_fetch(i, &move |t: &str| n(t)) else {
                        continue; // its cell got there first
                    };
                    let secs = started.elapsed().as_secs_f64();
                    let line = match r {
                        // Already in the cache: nothing to say.
                        Ok(_) if secs < 0.5 => None,
                        Ok(_) => Some(format!(
                            "kernel {} ready in {secs:.0} s ({} of {total})",
                            slot.name,
                            i + 1
                        )),
                        Err(e) => Some(format!("kernel {}: {e:#}", slot.name)),
                    };
                    if let Some(line) = line {
                        note(&line);
                    }
                }
            })
        };
        threads.push(kernel_thread);
        Prefetch { shared, threads }
    }

    /// The kernel of cell `cell` (`alias/arch`, as given to [`start`]):
    /// fetched by whoever came first. By name, not by position: a plan
    /// cut down to some of the cells (the mutants runner's one-cell plans)
    /// still gets each cell's own kernel.
    ///
    /// [`start`]: Prefetch::start
    pub fn kernel(&self, cell: &str, progress: &dyn Fn(&str)) -> Result<KernelImage> {
        let i = self
            .shared
            .kernels
            .iter()
            .position(|s| s.name == cell)
            .ok_or_else(|| anyhow!("no kernel was set up for the cell {cell}"))?;
        if let Some(r) = self.shared.take_and_fetch(i, progress) {
            return r;
        }
        let slot = &self.shared.kernels[i];
        let mut state = slot
            .state
            .lock()
            .map_err(|_| anyhow!("a kernel fetch panicked"))?;
        loop {
            match &*state {
                SlotState::Done(r) => return (**r).clone().map_err(|e| anyhow!(e)),
                _ => {
                    state = slot
                        .ready
                        .wait(state)
                        .map_err(|_| anyhow!("a kernel fetch panicked"))?
                }
            }
        }
    }

    /// The guest root of `recipe`: built by whoever came first.
    pub fn root(&self, recipe: &Path, progress: &dyn Fn(&str)) -> Result<GuestRoot> {
        self.shared.root(recipe, progress)
    }

    /// What is still under way: kernels not fetched (`alias/arch`) and
    /// roots not built (their recipe's name).
    pub fn pending(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .shared
            .kernels
            .iter()
            .filter(|s| {
                s.state
                    .lock()
                    .map(|st| !matches!(*st, SlotState::Done(_)))
                    .unwrap_or(false)
            })
            .map(|s| format!("kernel {}", s.name))
            .collect();
        if let Ok(left) = self.shared.roots_pending.lock() {
            out.extend(
                left.iter()
                    .map(|r| format!("guest root {}", recipe_name(r))),
            );
        }
        out
    }

    /// Waits for the threads (a run that was cancelled leaves them: the
    /// process is about to end).
    pub fn finish(self) {
        if crate::process::stop::cancelled().is_some() {
            return;
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl Shared {
    /// Fetches kernel `i` when nobody has taken it yet (None: taken).
    fn take_and_fetch(&self, i: usize, progress: &dyn Fn(&str)) -> Option<Result<KernelImage>> {
        let slot = &self.kernels[i];
        {
            let mut state = slot.state.lock().ok()?;
            if !matches!(*state, SlotState::Waiting) {
                return None;
            }
            *state = SlotState::Taken;
        }
        let r = slot.source.image(&self.cache, progress);
        let kept = match &r {
            Ok(img) => Ok(img.clone()),
            Err(e) => Err(format!("{e:#}")),
        };
        if let Ok(mut state) = slot.state.lock() {
            *state = SlotState::Done(Box::new(kept));
        }
        slot.ready.notify_all();
        Some(r)
    }

    fn root(&self, recipe: &Path, progress: &dyn Fn(&str)) -> Result<GuestRoot> {
        let mut built = self
            .roots
            .lock()
            .map_err(|_| anyhow!("a guest root build panicked"))?;
        let entry = built.entry(recipe.to_path_buf()).or_insert_with(|| {
            rootfs::build(&self.cache, recipe, progress).map_err(|e| format!("{e:#}"))
        });
        if let Ok(mut left) = self.roots_pending.lock() {
            left.retain(|r| r != recipe);
        }
        entry
            .clone()
            .map_err(|e| anyhow!("building the guest root from {}: {e}", recipe.display()))
    }
}

fn recipe_name(recipe: &Path) -> String {
    recipe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| recipe.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;

    fn image(alias: &str) -> KernelImage {
        KernelImage {
            alias: alias.into(),
            suite: "custom".into(),
            arch: Arch::X86_64,
            package: format!("/k/{alias}"),
            version: "custom".into(),
            release: String::new(),
            vmlinuz: format!("/k/{alias}").into(),
            vmlinuz_sha256: String::new(),
            modules: PathBuf::new(),
            config: None,
            debs: Vec::new(),
        }
    }

    /// The mutants runner cuts a plan down to one cell: that cell must get
    /// its own kernel, not the first cell's (it booted bookworm's 6.1 as
    /// "sid/x86_64" while the kernel was looked up by position).
    #[test]
    fn each_cell_gets_its_own_kernel_by_name() {
        let cells = ["bookworm/x86_64", "sid/x86_64", "bullseye/x86_64"];
        let p = Prefetch::start(
            Path::new("/nonexistent-cache"),
            cells
                .iter()
                .map(|c| (c.to_string(), KernelSource::Custom(image(c))))
                .collect(),
            Vec::new(),
            Arc::new(|_: &str| {}),
        );
        for c in ["sid/x86_64", "bullseye/x86_64", "bookworm/x86_64"] {
            assert_eq!(
                p.kernel(c, &|_| {}).map(|k| k.alias).ok().as_deref(),
                Some(c)
            );
        }
        let e = p.kernel("trixie/x86_64", &|_| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no kernel was set up for the cell trixie/x86_64"
        );
        p.finish();
    }
}
