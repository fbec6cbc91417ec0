//! One run of the engine, shared by `matrix` and `overhead`: select,
//! provision, lock, build the guests, choose KVM or TCG, plan the cells
//! and run them with the UI thread rendering their events.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use anyhow::{Context, Result};

use harness::engine::{self, CellSpec, DeadlineOverrides, GuestImage, Job, Plan, Prefetch};
use harness::host::{accel, setup, virtiofs};
use harness::images::image;
use harness::kernels::kernel::{self, KernelSource};
use harness::kernels::manifest::Manifest;
use harness::model::{Accel, Arch, CellId, CellResult};

use super::args::{MatrixArgs, TransportArg};
use super::lock::lock_selection;
use super::note;
use super::render::render;
use super::selection::{cores, default_jobs, parse_cell_timeout, select, usage_error};

/// What a run of the engine gave: results, how acceleration was chosen,
/// the engine's wall time.
pub struct Ran {
    pub results: Vec<CellResult>,
    pub accel_reason: String,
    pub wall: f64,
}

/// Selects, provisions, locks, builds and runs the cells of `job`
/// (Err(code): a usage error, already printed).
pub fn run_engine(
    args: &MatrixArgs,
    report_dir: &Path,
    job: Job,
) -> Result<std::result::Result<Ran, ExitCode>> {
    let p = match prepare(args, report_dir, job)? {
        Ok(p) => p,
        Err(code) => return Ok(Err(code)),
    };
    let results = run_plan(&p.plan, &p.images, &p.prefetch, true);
    p.prefetch.finish();
    Ok(Ok(Ran {
        results,
        accel_reason: p.accel_reason,
        wall: p.started.elapsed().as_secs_f64(),
    }))
}

/// A run made ready: its plan, the guests' binaries, the kernels and roots
/// on their way, how acceleration was chosen.
pub struct Prepared {
    pub plan: Plan,
    pub images: Vec<GuestImage>,
    pub prefetch: Prefetch,
    pub accel_reason: String,
    pub started: Instant,
}

/// Everything of [`run_engine`] up to running the cells: select,
/// provision, lock, build the guests, choose KVM or TCG, plan.
pub fn prepare(
    args: &MatrixArgs,
    report_dir: &Path,
    job: Job,
) -> Result<std::result::Result<Prepared, ExitCode>> {
    let manifest = Manifest::load(&Manifest::default_path())?;
    let (kernels, mut arches) = match select(&manifest, &args.select) {
        Ok(x) => x,
        Err(msg) => return Ok(Err(usage_error(msg))),
    };
    let mut overrides = DeadlineOverrides {
        boot: args.boot_timeout,
        run: args.run_timeout,
        cells: Vec::new(),
    };
    for s in &args.cell_timeout {
        match parse_cell_timeout(s) {
            Ok(o) => overrides.cells.push(o),
            Err(msg) => return Ok(Err(usage_error(msg))),
        }
    }
    if args.kernel_image.is_some() && args.select.arch.is_empty() {
        arches = vec![Arch::host()];
    }
    // One run per report directory; the second says who holds it.
    std::fs::create_dir_all(report_dir)?;
    if let Err(msg) = hold_report_dir(report_dir)? {
        return Ok(Err(usage_error(msg)));
    }
    let tracer_override = match &args.tracer {
        Some(t) if !t.is_file() => {
            return Ok(Err(usage_error(format!(
                "--tracer {}: no such file",
                t.display()
            ))))
        }
        Some(t) if arches.len() != 1 => {
            return Ok(Err(usage_error(format!(
                "--tracer {} is built for one arch: give one --arch",
                t.display()
            ))))
        }
        t => t.clone(),
    };
    super::signals::install()?;
    let started = Instant::now();
    let cache = harness::paths::cache_root();
    setup::ensure(&cache, &arches, &note)?;
    let vng = setup::vng_path(&cache);

    // Every Debian cell boots exactly what the lock file names.
    let mut specs: Vec<(CellId, String, KernelSource)> = Vec::new();
    if let Some(image) = &args.kernel_image {
        if arches.len() != 1 {
            return Ok(Err(usage_error(
                "--kernel-image boots one kernel: give one --arch".to_string(),
            )));
        }
        let img = kernel::custom(
            &cache,
            "custom",
            arches[0],
            image,
            args.kernel_modules.as_deref(),
        )?;
        specs.push((
            CellId {
                alias: "custom".into(),
                arch: arches[0],
            },
            "custom".into(),
            KernelSource::Custom(img),
        ));
    }
    // Beside a user's own kernel, only the Debian kernels named with
    // --kernels (a comparison in one report); without it, the selection's.
    if args.kernel_image.is_none() || !args.select.kernels.is_empty() {
        let outcomes = lock_selection(&cache, &kernels, &arches, &args.select, args.relock)?;
        for o in outcomes {
            let e = o.entry().clone();
            specs.push((
                CellId {
                    alias: e.alias.clone(),
                    arch: e.arch,
                },
                e.suite.clone(),
                KernelSource::Locked(e),
            ));
        }
    }

    // Kernels and guest roots download and build beside the cargo builds
    // and the KVM probe; each cell takes its own from here.
    let prefetch = Prefetch::start(
        &cache,
        specs
            .iter()
            .map(|(id, _, kernel)| (id.to_string(), kernel.clone()))
            .collect(),
        arches
            .iter()
            .filter_map(|&a| image::root_recipe(a))
            .collect(),
        Arc::new(note),
    );
    // KVM or TCG: decided once, by a probe boot of the first host-arch
    // kernel (only for --accel auto), beside the builds (the probe needs
    // only that kernel, the prefetcher's first, and vng). The decision is kept per host configuration: a
    // known host starts its first cell at once.
    let decide = || -> Result<accel::AccelChoice> {
        let probe = accel::probe_kernel(specs.iter().map(|(_, _, kernel)| kernel));
        let host_key = accel::host_key(accel::qemu_binary(Arch::host()).as_deref());
        let known = (args.accel == Accel::Auto && !args.reprobe_kvm)
            .then(|| accel::remembered(&cache, &host_key))
            .flatten();
        Ok(match (args.accel, probe, known) {
            (Accel::Auto, _, Some(r)) if arches.contains(&Arch::host()) => accel::AccelChoice {
                accel: r.accel,
                reason: format!(
                    "{} (decided for this host before; --reprobe-kvm or `harness doctor` decides afresh)",
                    r.reason
                ),
            },
            // The probe's kernel is its cell's: fetched once, by whoever
            // comes first.
            (Accel::Auto, Some(i), _) => match prefetch.kernel(&specs[i].0.to_string(), &note) {
                Ok(img) => {
                    let c = accel::choose(args.accel, Arch::host(), &vng, &img.vmlinuz, report_dir);
                    accel::remember(&cache, &host_key, &c)?;
                    c
                }
                Err(e) => accel::AccelChoice {
                    accel: Accel::Tcg,
                    reason: format!("no kernel to probe KVM with ({e:#})"),
                },
            },
            _ => accel::choose(args.accel, arches[0], &vng, Path::new(""), report_dir),
        })
    };

    let build = || -> Result<Vec<GuestImage>> {
        let mut images = Vec::new();
        for &arch in &arches {
            note(&format!("building the tracer and guest agent for {arch}"));
            let mut binaries = image::build(arch)?;
            if let Some(t) = &tracer_override {
                binaries.tracer = t.clone();
            }
            if matches!(job, Job::Overhead(_)) {
                note(&format!("building the unlink-path bench for {arch}"));
                binaries.bench = Some(image::build_bench(arch)?);
            }
            images.push(GuestImage {
                arch,
                binaries,
                root_recipe: image::root_recipe(arch),
            });
        }
        Ok(images)
    };
    let building = Instant::now();
    let (images, choice) = std::thread::scope(|s| {
        let deciding = s.spawn(decide);
        let images = build();
        let choice = deciding
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the KVM decision panicked")));
        (images, choice)
    });
    let (images, choice) = (images?, choice?);

    let pending = prefetch.pending();
    if !pending.is_empty() {
        note(&format!(
            "guest binaries built in {:.0} s; waiting on: {}",
            building.elapsed().as_secs_f64(),
            pending.join(", ")
        ));
    }

    note(&format!("accel: {:?} ({})", choice.accel, choice.reason));

    let cells = specs
        .into_iter()
        .map(|(id, suite, kernel)| {
            let deadlines = job.deadlines(choice.accel, &id, &overrides);
            // A custom kernel has no manifest entry, so no declared splat.
            let known_splats = match &kernel {
                KernelSource::Custom(_) => Vec::new(),
                KernelSource::Locked(_) => manifest
                    .get(&id.alias)
                    .map(|k| k.known_splats(id.arch))
                    .unwrap_or_default(),
            };
            CellSpec {
                id,
                suite,
                kernel,
                deadlines,
                known_splats,
            }
        })
        .collect::<Vec<_>>();
    let virtiofsd_dir = match args.transport {
        TransportArg::Virtiofs => {
            let dir = setup::virtiofsd_dir(&cache);
            match virtiofs::check(&dir) {
                Ok(()) => Some(dir),
                Err(why) => {
                    note(&format!(
                        "virtiofsd cannot run here ({why}); every guest uses 9p"
                    ));
                    None
                }
            }
        }
        TransportArg::NineP => None,
    };
    let jobs = args.jobs.unwrap_or_else(|| match &job {
        Job::Gate => default_jobs(choice.accel),
        // One vCPU per guest: one guest per core keeps wall figures
        // from fighting over the cores.
        Job::Overhead(_) => cores(),
        // One cell.
        Job::Exec(_) => 1,
    });
    let plan = Plan {
        job,
        cells,
        accel: choice.accel,
        report_dir: report_dir.to_path_buf(),
        cache: cache.clone(),
        vng,
        jobs,
        virtiofsd_dir,
    };
    note(&format!(
        "{} cells, {} at a time",
        plan.cells.len(),
        plan.jobs
    ));
    Ok(Ok(Prepared {
        plan,
        images,
        prefetch,
        accel_reason: choice.reason,
        started,
    }))
}

/// Runs a plan's cells; each cell's events are rendered (`show`) or
/// dropped.
pub fn run_plan(
    plan: &Plan,
    images: &[GuestImage],
    prefetch: &Prefetch,
    show: bool,
) -> Vec<CellResult> {
    let (tx, rx) = mpsc::channel();
    let ui = std::thread::spawn({
        let cells: Vec<CellId> = plan.cells.iter().map(|c| c.id.clone()).collect();
        move || {
            if show {
                render(&cells, rx)
            } else {
                rx.iter().for_each(drop)
            }
        }
    });
    let results = engine::run(plan, images, prefetch, &tx);
    drop(tx);
    let _ = ui.join();
    results
}

/// The lock file of a report directory: held (flock) for the whole run.
pub const REPORT_LOCK: &str = ".harness-run.lock";

/// Takes the report directory for this run; Ok(Err(msg)) when another run
/// holds it (the message names that run). The lock lives until exit.
fn hold_report_dir(dir: &Path) -> Result<std::result::Result<(), String>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::Write;
    let path = dir.join(REPORT_LOCK);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0)?;
            let args: Vec<String> = std::env::args().collect();
            writeln!(
                lock,
                "pid {} started {}: {}",
                std::process::id(),
                unix_now(),
                args.join(" ")
            )?;
            // Held until the process exits, however it exits.
            std::mem::forget(lock);
            Ok(Ok(()))
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            Ok(Err(format!(
                "report directory {} is in use by another harness run ({}); wait for it or give another --report",
                dir.display(),
                holder.trim()
            )))
        }
        Err((_, e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
