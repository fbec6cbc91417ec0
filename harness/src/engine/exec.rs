//! A user's command in a cell's guest (`harness run`): one boot of exactly
//! what the cell boots (its kernel, root, the freshly built tracer and
//! agent), running `unlink-guest exec -- COMMAND`; each line the command
//! writes comes out as an event (the agent's console lines, see
//! `guest.rs`), its exit code is the row's.

use super::failure::CellFailure;
use super::guest::{boot_guest, prepare_out, BootFacts, CellRun, GuestBoot, GUEST_OUT};
use unlink_schema::protocol::files;

/// What the command's boot gave.
pub(super) struct Executed {
    pub boot: BootFacts,
    /// The command's exit code (128 + a signal's number), once it ran.
    pub exit_code: Option<i32>,
    pub end: Result<(), CellFailure>,
}

/// The guest's shell command line for `command` (pure): the agent's
/// `exec`, every argument quoted for the guest's shell.
pub fn exec_command(agent: &str, command: &[String]) -> Result<String, String> {
    let quoted = shlex::try_join(command.iter().map(String::as_str))
        .map_err(|e| format!("the command cannot be quoted for the guest's shell: {e}"))?;
    Ok(format!("{agent} exec --out {GUEST_OUT} -- {quoted}"))
}

pub(super) fn boot_and_exec(c: &CellRun, command: &[String]) -> Executed {
    let out = c.dir.join("out");
    let stopped = |e: CellFailure| Executed {
        boot: BootFacts::default(),
        exit_code: None,
        end: Err(e),
    };
    let bins = match prepare_out(&out, &c.image.binaries) {
        Ok(b) => b,
        Err(e) => return stopped(e.into()),
    };
    let line = match exec_command(&bins.agent.display().to_string(), command) {
        Ok(l) => l,
        Err(e) => return stopped(CellFailure::error(anyhow::anyhow!(e))),
    };
    let gb = GuestBoot {
        accel: c.plan.accel,
        command: line,
        qemu_opts: None,
        cpus: 2,
        out: out.clone(),
        console: c.dir.join("console.log"),
        deadlines: c.cell.deadlines,
    };
    let boot = boot_guest(c, &gb);
    let exit_code = std::fs::read_to_string(out.join(files::EXIT_CODE))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    Executed {
        boot: boot.facts,
        exit_code,
        end: boot.end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_for_the_guest() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let cases: [(&[&str], &str); 3] = [
            (
                &["unlink-tracer", "--show-target"],
                "/run/unlink-out/bin/unlink-guest exec --out /run/unlink-out -- unlink-tracer --show-target",
            ),
            (
                &["sh", "-c", "echo 'a b'; exit 3"],
                "/run/unlink-out/bin/unlink-guest exec --out /run/unlink-out -- sh -c \"echo 'a b'; exit 3\"",
            ),
            (
                &["touch", "$HOME"],
                "/run/unlink-out/bin/unlink-guest exec --out /run/unlink-out -- touch '$HOME'",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(
                exec_command("/run/unlink-out/bin/unlink-guest", &s(args)).as_deref(),
                Ok(want)
            );
        }
        assert!(exec_command("a", &s(&["nul\0byte"])).is_err());
    }
}
