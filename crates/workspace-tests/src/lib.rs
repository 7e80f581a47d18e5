//! Runs a workspace's own test cases (`tests/*.yaml`) against its agents: the library behind
//! `agents-gateway test`, for host programs that run their workspace's tests in `cargo test`.
//!
//! Each case gets a gateway of its own (an in-memory store, no background work, the case's
//! model forced on every agent, its inline script), sends its message or conversation
//! through the core's one run pipeline, and is checked against its expectations; cases run
//! in parallel, at most [`RunOptions::jobs`] at once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), workspace_tests::Error> {
//! let report = workspace_tests::run(
//!     std::path::Path::new("./workspace"),
//!     &workspace_tests::RunOptions::default(),
//!     |_| {},
//! )
//! .await?;
//! assert!(report.all_passed(), "{}", workspace_tests::summary(&report));
//! # Ok(()) }
//! ```

mod assertions;
mod case;
pub mod judge;
pub mod junit;
pub mod report;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use futures::StreamExt;
use gateway_core::workspace::test_cases::{self, TestFile};
use gateway_core::workspace::{Diagnostics, ExternalNames, GatewayConfig, Workspace};

pub use report::{
    Assertion, CaseReport, FileReport, Report, ToolCallRecord, Transcript, Turn, UsageSummary,
};

/// Cases run at once unless told otherwise.
pub const DEFAULT_JOBS: usize = 4;

/// What to run, and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Runs only the cases whose `<file>::<case>` contains this (ignoring case).
    pub filter: Option<String>,
    /// Runs every case against this model (over the case's and the file's).
    pub model: Option<String>,
    /// Cases run at once (at least one).
    pub jobs: usize,
    /// The environment of the gateways (provider keys, `${VAR}`); the process's when
    /// `None`.
    pub env: Option<BTreeMap<String, String>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            filter: None,
            model: None,
            jobs: DEFAULT_JOBS,
            env: None,
        }
    }
}

/// How a run goes, for a progress line.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The cases chosen are about to run.
    Started { total: usize },
    /// A case ended (cases end in any order).
    Finished {
        case: &'a CaseReport,
        done: usize,
        total: usize,
    },
}

/// Why the tests could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The test files (or `gateway.yaml`) have errors; every problem with its file and line.
    #[error("the workspace's tests have {} error(s)", .0.errors().count())]
    Invalid(Diagnostics),
    #[error("workspace folder '{0}' not found")]
    NoWorkspace(String),
}

/// The workspace's test files and every problem in them: their own mistakes, their inline
/// scripts, and references to agents and tools the workspace lacks. What `check` reports.
pub fn load(workspace: &Workspace) -> (Vec<TestFile>, Diagnostics) {
    let (files, mut diagnostics) = test_cases::load(&workspace.root);
    diagnostics.extend(test_cases::check_references(
        &files,
        workspace,
        &ExternalNames::default(),
    ));
    (files, diagnostics)
}

/// Runs the workspace's tests (those `options.filter` picks), calling `progress` as they
/// go. Fails only when the tests cannot run at all: a failing case is in the report.
pub async fn run(
    workspace: &Path,
    options: &RunOptions,
    progress: impl Fn(&Progress<'_>),
) -> Result<Report, Error> {
    let started = Instant::now();
    if !workspace.is_dir() {
        return Err(Error::NoWorkspace(workspace.display().to_string()));
    }
    let env = options
        .env
        .clone()
        .unwrap_or_else(GatewayConfig::process_env);
    let loaded = Workspace::load(workspace, &env);
    if !loaded.config_valid {
        return Err(Error::Invalid(loaded.diagnostics));
    }
    let (files, diagnostics) = load(&loaded);
    if diagnostics.has_errors() {
        return Err(Error::Invalid(diagnostics));
    }
    let filter = options.filter.as_ref().map(|f| f.to_lowercase());
    let mut jobs = Vec::new();
    let mut reports: Vec<report::FileReport> = Vec::new();
    for file in &files {
        reports.push(report::FileReport {
            name: file.name.clone(),
            path: file.path.clone(),
            cases: Vec::new(),
        });
        for case in &file.cases {
            let id = case.id(file);
            if filter
                .as_ref()
                .is_some_and(|f| !id.to_lowercase().contains(f.as_str()))
            {
                continue;
            }
            jobs.push((
                reports.len() - 1,
                case::Job {
                    workspace: workspace.to_path_buf(),
                    env: env.clone(),
                    file: file.name.clone(),
                    case: case.clone(),
                    model: options.model.clone(),
                },
            ));
        }
    }
    let total = jobs.len();
    progress(&Progress::Started { total });
    let mut finished: Vec<(usize, usize, CaseReport)> = Vec::with_capacity(total);
    let mut running = futures::stream::iter(jobs.into_iter().enumerate())
        .map(|(order, (file, job))| async move {
            let name = job.case.name.clone();
            let id = format!("{}::{name}", job.file);
            match tokio::spawn(case::run(job)).await {
                Ok(report) => (order, file, report),
                Err(err) => (order, file, crashed(id, name, err.to_string())),
            }
        })
        .buffer_unordered(options.jobs.max(1));
    while let Some((order, file, report)) = running.next().await {
        progress(&Progress::Finished {
            case: &report,
            done: finished.len() + 1,
            total,
        });
        finished.push((order, file, report));
    }
    finished.sort_by_key(|(order, _, _)| *order);
    for (_, file, report) in finished {
        if let Some(entry) = reports.get_mut(file) {
            entry.cases.push(report);
        }
    }
    reports.retain(|f| !f.cases.is_empty());
    Ok(Report {
        files: reports,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// A case whose task ended without a report.
fn crashed(id: String, name: String, error: String) -> CaseReport {
    let file = id.split("::").next().unwrap_or_default().to_string();
    CaseReport {
        id,
        file,
        name,
        agent: String::new(),
        model: None,
        passed: false,
        error: Some(format!("the case stopped unexpectedly: {error}")),
        assertions: Vec::new(),
        transcript: Transcript::default(),
        duration_ms: 0,
    }
}

/// `N passed, M failed` and, for each failed case, what failed (for an `assert!` message).
pub fn summary(report: &Report) -> String {
    let mut text = format!("{} passed, {} failed", report.passed(), report.failed());
    for case in report.cases().filter(|c| !c.passed) {
        text.push_str(&format!("\n{}:", case.id));
        if let Some(error) = &case.error {
            text.push_str(&format!("\n  {error}"));
        }
        for failure in case.failures() {
            text.push_str(&format!(
                "\n  {}: expected {}; got {}",
                failure.kind, failure.expected, failure.actual
            ));
        }
    }
    text
}
