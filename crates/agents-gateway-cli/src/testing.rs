//! `agents-gateway test`: runs the workspace's test cases (`tests/*.yaml`) with a progress
//! line, then prints what failed (expected, actual, transcript) and a table of results.
//! Exit codes: 0 every case passed, 1 a case failed, 2 the tests could not run (errors in
//! the test files, no case to run, a JUnit file that cannot be written).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agent_gateway::workspace::Diagnostics;
use serde_json::json;
use workspace_tests::{CaseReport, Progress, Report, RunOptions};

use crate::output::{Format, Table};

/// Test files have errors, nothing to run, or the command was misused.
pub const EXIT_INVALID: u8 = 2;

/// What `agents-gateway test` was asked.
pub struct TestArgs {
    pub workspace: PathBuf,
    pub filter: Option<String>,
    pub model: Option<String>,
    pub jobs: usize,
    pub junit: Option<PathBuf>,
}

pub async fn test(args: TestArgs) -> ExitCode {
    let options = RunOptions {
        filter: args.filter.clone(),
        model: args.model.clone(),
        jobs: args.jobs,
        env: None,
    };
    let progress = ProgressLine::new();
    let outcome =
        workspace_tests::run(&args.workspace, &options, |event| progress.show(event)).await;
    progress.finish();
    let report = match outcome {
        Ok(report) => report,
        Err(workspace_tests::Error::Invalid(diagnostics)) => {
            print_problems(&diagnostics);
            return ExitCode::from(EXIT_INVALID);
        }
        Err(err) => {
            eprintln!(
                "Error: {err} (create one with `agents-gateway init <name>`, or pass --workspace)"
            );
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if report.total() == 0 {
        match &args.filter {
            Some(filter) => eprintln!("No test case matches -k {filter:?}."),
            None => eprintln!(
                "No test cases found: write them in {}/*.yaml (see the README's `tests` section).",
                args.workspace.join("tests").display()
            ),
        }
        return ExitCode::from(EXIT_INVALID);
    }
    print_failures(&report);
    print_table(&report);
    println!();
    println!(
        "{} passed, {} failed ({} cases in {:.1} s)",
        report.passed(),
        report.failed(),
        report.total(),
        report.duration_ms as f64 / 1000.0
    );
    if let Some(path) = &args.junit
        && let Err(err) = write_junit(path, &report)
    {
        eprintln!(
            "Error: cannot write the JUnit file {}: {err}",
            path.display()
        );
        return ExitCode::from(EXIT_INVALID);
    }
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn write_junit(path: &Path, report: &Report) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, workspace_tests::junit::to_xml(report))
}

/// The test files' problems, as `check` prints them (file:line: message), on stderr.
fn print_problems(diagnostics: &Diagnostics) {
    let (_, errors) = crate::output::write_diagnostics(&mut std::io::stderr(), diagnostics);
    eprintln!();
    eprintln!("The tests did not run: {errors} error(s) (`agents-gateway check` lists them too).");
}

/// Each failed case: its failed assertions (expected, then what came) and its transcript.
fn print_failures(report: &Report) {
    let failed: Vec<&CaseReport> = report.cases().filter(|c| !c.passed).collect();
    if failed.is_empty() {
        return;
    }
    println!("Failures:");
    for case in failed {
        println!();
        let model = case
            .model
            .as_deref()
            .map(|m| format!(", model {m}"))
            .unwrap_or_default();
        println!("FAIL {} (agent {}{model})", case.id, case.agent);
        if let Some(error) = &case.error {
            println!("  {error}");
        }
        for failure in case.failures() {
            println!("  {}:", failure.kind);
            println!("    expected: {}", failure.expected);
            println!("    actual:   {}", failure.actual);
        }
        let lines = case.transcript.lines();
        if !lines.is_empty() {
            println!("  transcript:");
            for line in lines {
                println!("    {line}");
            }
        }
    }
    println!();
}

fn print_table(report: &Report) {
    let mut table = Table::new(
        &[
            "case",
            "agent",
            "result",
            "assertions",
            "steps",
            "cost_usd",
            "ms",
        ],
        "",
    );
    for case in report.cases() {
        let passed = case.assertions.iter().filter(|a| a.passed).count();
        table.row(vec![
            json!(case.id),
            json!(case.agent),
            json!(if case.passed { "pass" } else { "FAIL" }),
            json!(format!("{passed}/{}", case.assertions.len())),
            json!(case.transcript.usage.steps()),
            json!(case.transcript.usage.cost_usd),
            json!(case.duration_ms),
        ]);
    }
    if let Ok(text) = table.render(Format::Table) {
        println!("{text}");
    }
}

/// The line on stderr that says how far the run is: rewritten in place on a terminal, one
/// line per finished case otherwise (CI logs).
struct ProgressLine {
    terminal: bool,
}

impl ProgressLine {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, event: &Progress<'_>) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Progress::Started { total } if self.terminal => {
                write!(err, "\rRunning {total} test case(s)...")
            }
            Progress::Started { total } => writeln!(err, "Running {total} test case(s)"),
            Progress::Finished { case, done, total } => {
                let result = if case.passed { "pass" } else { "FAIL" };
                if self.terminal {
                    write!(
                        err,
                        "\r\x1b[2K[{done}/{total}] {result} {} ({} ms)",
                        case.id, case.duration_ms
                    )
                } else {
                    writeln!(
                        err,
                        "[{done}/{total}] {result} {} ({} ms)",
                        case.id, case.duration_ms
                    )
                }
            }
        };
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
    }
}
