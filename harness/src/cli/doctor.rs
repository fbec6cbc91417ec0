//! `harness doctor`: this host's findings, one line each, with the fix.

use std::process::ExitCode;

use anyhow::Result;

use super::note;

pub fn run() -> Result<ExitCode> {
    use harness::host::doctor::Level;
    let cache = harness::paths::cache_root();
    let findings = harness::host::doctor::run(&cache, &note);
    let width = findings.iter().map(|f| f.what.len()).max().unwrap_or(0);
    let mut missing = 0;
    for f in &findings {
        let mark = match f.level {
            Level::Ok => "ok  ",
            Level::Missing => {
                missing += 1;
                "MISS"
            }
            Level::Note => "note",
        };
        println!("{mark} {:<width$}  {}", f.what, f.found);
        if let (Some(fix), Level::Missing | Level::Note) = (&f.fix, f.level) {
            println!("     {:<width$}  fix: {fix}", "");
        }
    }
    println!(
        "{}",
        if missing == 0 {
            "doctor: nothing missing".to_string()
        } else {
            format!("doctor: {missing} missing; `cargo harness setup` (as root) installs them all")
        }
    );
    Ok(if missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
