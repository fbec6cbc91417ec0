//! An overhead cell (`harness overhead`): one boot per clock, each running
//! every mode's rounds, read back into figures.

use anyhow::Context;

use super::failure::CellFailure;
use super::guest::{boot_guest, prepare_out, round2, CellRun, GuestBoot, GUEST_OUT};
use super::{MatrixEvent, Stage};
use crate::kernels::facts;
use crate::model::figures::{CellOverhead, Clock, ClockFigures};
use crate::model::{Accel, Status};
use crate::overhead;
use crate::vm::boot::Deadlines;

/// What an overhead cell's boots gave.
pub(super) struct Measured {
    /// Of the first boot that reached the agent (else the last boot).
    pub banner_s: Option<f64>,
    pub boot_s: Option<f64>,
    /// The agent's runs, all clocks.
    pub run_s: Option<f64>,
    /// Of the last boot that ran QEMU.
    pub transport: Option<String>,
    /// `uname -r` as the guest reported it, read when the kernel image did
    /// not say.
    pub guest_release: Option<String>,
    /// The function the probes attached to (the first clock that says).
    pub symbol: Option<String>,
    pub overhead: CellOverhead,
    /// Ok when every clock's every mode passed; else Fail, or the last
    /// boot's Timeout or kernel Fail.
    pub end: Result<(), CellFailure>,
}

/// What one clock's boot gave besides its figures.
struct ClockBoot {
    banner_s: Option<f64>,
    boot_s: Option<f64>,
    transport: Option<String>,
    /// The boot's own failure status (Timeout, Fail, Error), if any.
    failed: Option<Status>,
    guest_release: Option<String>,
}

pub(super) fn boot_and_measure(c: &CellRun, settings: &overhead::Settings) -> Measured {
    let mut m = Measured {
        banner_s: None,
        boot_s: None,
        run_s: None,
        transport: None,
        guest_release: None,
        symbol: None,
        overhead: CellOverhead::default(),
        end: Ok(()),
    };
    let mut errors = Vec::new();
    let mut boot_status = None;
    for &clock in &settings.clocks {
        let (f, boot) = measure_clock(c, settings, clock);
        if let Some(b) = boot {
            if m.boot_s.is_none() {
                m.banner_s = b.banner_s;
                m.boot_s = b.boot_s;
            }
            if b.transport.is_some() {
                m.transport = b.transport;
            }
            if let Some(s @ (Status::Timeout | Status::Fail)) = b.failed {
                boot_status = Some(s);
            }
            if m.guest_release.is_none() && c.img.release.is_empty() {
                m.guest_release = b.guest_release;
            }
        }
        if !f.is_ok() {
            let failed: Vec<String> = f
                .modes
                .iter()
                .filter(|m| !m.status.is_ok())
                .map(|m| format!("{}: {}", m.mode, m.detail))
                .chain(f.error.clone())
                .collect();
            errors.push(format!("{} clock: {}", clock.name(), failed.join("; ")));
        }
        if m.symbol.is_none() {
            m.symbol = f.symbol.clone();
        }
        m.overhead.clocks.push(f);
    }
    m.run_s = Some(round2(
        m.overhead
            .clocks
            .iter()
            .filter_map(|c| c.run_s)
            .sum::<f64>(),
    ));
    if !errors.is_empty() {
        m.end = Err(CellFailure::new(
            boot_status.unwrap_or(Status::Fail),
            anyhow::anyhow!("{}", errors.join("; ")),
        ));
    }
    m
}

/// One clock: its figures (with what went wrong in `error`), and what its
/// boot showed when there was one.
fn measure_clock(
    c: &CellRun,
    settings: &overhead::Settings,
    clock: Clock,
) -> (ClockFigures, Option<ClockBoot>) {
    let CellRun {
        cell,
        img,
        image,
        dir,
        tx,
        ..
    } = *c;
    let id = &cell.id;
    let out = dir.join(format!("out-{}", clock.name()));
    let mut f = ClockFigures::new(clock, settings.rounds);
    let staged = prepare_out(&out, &image.binaries).and_then(|bins| {
        let bench = bins
            .bench
            .clone()
            .context("no bench binary was built for this arch")?;
        Ok((bins, bench))
    });
    let (bins, bench) = match staged {
        Ok(x) => x,
        Err(e) => {
            f.error = Some(format!("{e:#}"));
            return (f, None);
        }
    };
    let gb = GuestBoot {
        command: overhead::guest_command(&bins.agent, &bins.tracer, &bench, GUEST_OUT, settings),
        qemu_opts: clock.qemu_opts().map(str::to_string),
        // One vCPU: the probe's consumer runs on the bench's CPU, so
        // its cost is counted, and icount stays deterministic.
        cpus: 1,
        out: out.clone(),
        console: dir.join(format!("console-{}.log", clock.name())),
        // Instructions are counted by TCG only: an icount boot
        // never uses KVM, and gets TCG's deadlines.
        accel: match clock {
            Clock::Wall => c.plan.accel,
            Clock::Icount => Accel::Tcg,
        },
        deadlines: match (clock, c.plan.accel) {
            (Clock::Wall, _) => cell.deadlines,
            (Clock::Icount, Accel::Kvm) => {
                Deadlines::for_overhead(Accel::Tcg, id.arch, settings.steps()).icount()
            }
            (Clock::Icount, _) => cell.deadlines.icount(),
        },
    };
    let _ = tx.send(MatrixEvent::Note {
        cell: id.clone(),
        text: format!("{} clock", clock.name()),
    });
    let boot = boot_guest(c, &gb);
    f.boot_s = boot.facts.boot_s;
    f.run_s = boot.facts.run_s;
    let mut seen = ClockBoot {
        banner_s: boot.facts.banner_s,
        boot_s: boot.facts.boot_s,
        transport: boot.facts.transport,
        failed: boot.end.as_ref().err().map(|e| e.status),
        guest_release: None,
    };
    // The agent exits non-zero when a round failed; its figures
    // still say which, so read them whenever they are there.
    let booted = match boot.end {
        Err(e)
            if !out
                .join(unlink_schema::protocol::files::OVERHEAD_RUN)
                .exists() =>
        {
            f.error = Some(format!("{:#}", e.error));
            return (f, Some(seen));
        }
        other => other,
    };
    let _ = tx.send(MatrixEvent::Stage {
        cell: id.clone(),
        stage: Stage::Checking,
    });
    if img.release.is_empty() {
        // The overhead agent says it in its own run file (the gate's
        // scenario results, where a gate cell reads it, are not written).
        seen.guest_release = overhead::guest_release(&out);
    }
    match overhead::figures(&out, clock, facts::fentry_expectation(img)) {
        Ok(figures) => {
            f = ClockFigures {
                accel: Some(gb.accel),
                boot_s: f.boot_s,
                run_s: f.run_s,
                error: booted.err().map(|e| format!("{:#}", e.error)),
                ..figures
            };
        }
        Err(e) => f.error = Some(format!("{e:#}")),
    }
    (f, Some(seen))
}
