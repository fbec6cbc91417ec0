//! A gate cell (`harness matrix`): one boot running every scenario, then
//! the gate's verdicts and the `console` verdict.

use super::failure::CellFailure;
use super::guest::{boot_guest, prepare_out, BootFacts, CellRun, GuestBoot, GUEST_OUT};
use super::{MatrixEvent, Stage};
use crate::gate::{self, console};
use crate::model::{ScenarioResult, Span, Status};

/// What a gate cell's boot and check gave.
pub(super) struct Checked {
    pub boot: BootFacts,
    /// `uname -r` as the guest reported it, read when the kernel image did
    /// not say (a user's image).
    pub guest_release: Option<String>,
    /// The verdicts, once the guest's agent finished.
    pub gate: Option<Verdicts>,
    /// Ok when every verdict passed.
    pub end: Result<(), CellFailure>,
    /// Each scenario's attach, workload and stop, as the agent timed them.
    pub scenario_spans: Vec<Span>,
    /// Seconds the host-side checks took.
    pub checks_s: Option<f64>,
}

pub(super) struct Verdicts {
    pub scenarios: Vec<ScenarioResult>,
    pub facts: gate::Facts,
}

impl Checked {
    fn stopped(boot: BootFacts, failure: CellFailure) -> Checked {
        Checked {
            boot,
            guest_release: None,
            gate: None,
            end: Err(failure),
            scenario_spans: Vec::new(),
            checks_s: None,
        }
    }
}

pub(super) fn boot_and_check(c: &CellRun) -> Checked {
    let CellRun {
        cell,
        img,
        image,
        dir,
        tx,
        ..
    } = *c;
    let id = &cell.id;
    let out = dir.join("out");
    let bins = match prepare_out(&out, &image.binaries) {
        Ok(b) => b,
        Err(e) => return Checked::stopped(BootFacts::default(), e.into()),
    };
    let mut command = format!(
        "{} run --tracer {} --out {GUEST_OUT}",
        bins.agent.display(),
        bins.tracer.display(),
    );
    for name in gate::SCENARIOS {
        command.push_str(&format!(" --scenario {name}"));
    }
    let gb = GuestBoot {
        accel: c.plan.accel,
        command,
        qemu_opts: None,
        cpus: 2,
        out: out.clone(),
        console: dir.join("console.log"),
        deadlines: cell.deadlines,
    };
    let boot = boot_guest(c, &gb);
    // A boot that did not finish says which splats came first, if any.
    if let Err(f) = boot.end {
        let failure = match console::undeclared_detail(&boot.facts.splats, &cell.known_splats) {
            Some(splats) => CellFailure::new(f.status, anyhow::anyhow!("{:#}; {splats}", f.error)),
            None => f,
        };
        return Checked::stopped(boot.facts, failure);
    }
    let _ = tx.send(MatrixEvent::Stage {
        cell: id.clone(),
        stage: Stage::Checking,
    });
    // A user's image may not say its release; the guest always does.
    let guest_release = if img.release.is_empty() {
        gate::guest_release(&out)
    } else {
        None
    };
    let release = guest_release.as_deref().unwrap_or(&img.release);
    let checking = std::time::Instant::now();
    let (mut scenarios, facts) = gate::gate(&out, img, &id.alias, id.arch.name(), release);
    let checks_s = Some(checking.elapsed().as_secs_f64());
    scenarios.push(console::console_verdict(
        &boot.facts.splats,
        &cell.known_splats,
        boot.facts.console_lines,
    ));
    let failed: Vec<String> = scenarios
        .iter()
        .filter(|s| !s.status.is_ok())
        .map(|s| match s.failure {
            // The kind first, where the run said which.
            Some(kind) => format!("{}: {}: {}", s.name, kind.describe(), s.detail),
            None => format!("{}: {}", s.name, s.detail),
        })
        .collect();
    let end = if failed.is_empty() {
        Ok(())
    } else {
        Err(CellFailure::new(
            Status::Fail,
            anyhow::anyhow!("{}", failed.join("; ")),
        ))
    };
    Checked {
        boot: boot.facts,
        guest_release,
        gate: Some(Verdicts { scenarios, facts }),
        end,
        scenario_spans: gate::scenario_spans(&out),
        checks_s,
    }
}
