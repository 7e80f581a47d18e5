//! What a test run found: per file and case, each assertion's expected and actual value and
//! the transcript of the case's runs.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

/// The results of a test run, in file and case order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub files: Vec<FileReport>,
    /// Wall time of the whole run.
    pub duration_ms: u64,
}

impl Report {
    /// Every case, file by file.
    pub fn cases(&self) -> impl Iterator<Item = &CaseReport> {
        self.files.iter().flat_map(|f| f.cases.iter())
    }

    pub fn passed(&self) -> usize {
        self.cases().filter(|c| c.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.cases().filter(|c| !c.passed).count()
    }

    pub fn total(&self) -> usize {
        self.cases().count()
    }

    /// Whether every case passed (true for a run without cases).
    pub fn all_passed(&self) -> bool {
        self.cases().all(|c| c.passed)
    }
}

/// The cases of one test file that were run.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file's name without its extension.
    pub name: String,
    pub path: PathBuf,
    pub cases: Vec<CaseReport>,
}

/// How one case went.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// `<file>::<case>`.
    pub id: String,
    pub file: String,
    pub name: String,
    pub agent: String,
    /// The model every agent of the case's gateway used (`None`: the workspace's own).
    pub model: Option<String>,
    pub passed: bool,
    /// Why the case could not run at all (its gateway could not be built); its assertions
    /// are then empty.
    pub error: Option<String>,
    pub assertions: Vec<Assertion>,
    pub transcript: Transcript,
    pub duration_ms: u64,
}

impl CaseReport {
    /// The assertions that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Assertion> {
        self.assertions.iter().filter(|a| !a.passed)
    }
}

/// One checked expectation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assertion {
    /// The key of `expect` it comes from (`output_contains`, `judge`, ...).
    pub kind: String,
    pub passed: bool,
    /// What was expected, as written for a person.
    pub expected: String,
    /// What came.
    pub actual: String,
}

impl Assertion {
    pub fn new(
        kind: &str,
        passed: bool,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.to_string(),
            passed,
            expected: expected.into(),
            actual: actual.into(),
        }
    }
}

/// What happened in a case: its turns in order and their sums.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Transcript {
    pub turns: Vec<Turn>,
    pub usage: UsageSummary,
}

impl Transcript {
    /// The last turn (whose answer the output assertions look at).
    pub fn last(&self) -> Option<&Turn> {
        self.turns.last()
    }

    /// Every tool call of every turn, in order.
    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCallRecord> {
        self.turns.iter().flat_map(|t| t.tool_calls.iter())
    }

    /// Whether any turn failed (a refused run, or a run that did not complete).
    pub fn failed(&self) -> bool {
        self.turns.iter().any(|t| t.error.is_some())
    }

    /// The slowest turn's duration.
    pub fn max_latency_ms(&self) -> u64 {
        self.turns.iter().map(|t| t.duration_ms).max().unwrap_or(0)
    }

    /// The transcript as text lines for a person.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for turn in &self.turns {
            lines.push(format!("user: {}", turn.message));
            for call in &turn.tool_calls {
                lines.push(format!("tool call: {}({})", call.name, call.arguments));
                if let Some(result) = &call.result {
                    let state = if call.success == Some(false) {
                        " (failed)"
                    } else {
                        ""
                    };
                    lines.push(format!("tool result{state}: {}", one_line(result, 400)));
                }
            }
            if let Some(output) = &turn.output {
                lines.push(format!("structured output: {output}"));
            }
            if !turn.answer.is_empty() {
                lines.push(format!("assistant: {}", turn.answer));
            }
            let mut end = format!("[{}", turn.status);
            if let Some(error) = &turn.error {
                end.push_str(&format!(": {error}"));
            }
            end.push_str(&format!(
                "; {} model call(s), {} tool call(s), {} ms]",
                turn.usage.llm_calls, turn.usage.tool_calls, turn.duration_ms
            ));
            lines.push(end);
        }
        lines
    }
}

/// One run of the agent: an invocation, or a turn of the conversation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Turn {
    /// The user message sent.
    pub message: String,
    /// The execution, when the run was recorded.
    pub execution_id: Option<String>,
    /// `completed`, `failed`, `timeout`, `cancelled`, or `refused` when the run never
    /// started.
    pub status: String,
    /// Why the run failed or was refused.
    pub error: Option<String>,
    pub tool_calls: Vec<ToolCallRecord>,
    /// The final text.
    pub answer: String,
    /// The structured output, when an output schema applied and was met.
    pub output: Option<Value>,
    pub validation_errors: Option<Vec<String>>,
    pub usage: UsageSummary,
    pub duration_ms: u64,
}

/// A tool call as the run recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallRecord {
    pub name: String,
    pub arguments: Value,
    /// The result as recorded (cut when long).
    pub result: Option<String>,
    pub success: Option<bool>,
}

/// Usage of one turn or a whole case.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageSummary {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub llm_calls: u32,
    pub tool_calls: u32,
}

impl UsageSummary {
    /// Model calls plus tool calls.
    pub fn steps(&self) -> u32 {
        self.llm_calls + self.tool_calls
    }

    pub fn add(&mut self, other: &Self) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd = ((self.cost_usd + other.cost_usd) * 1e6).round() / 1e6;
        self.llm_calls += other.llm_calls;
        self.tool_calls += other.tool_calls;
    }
}

/// `text` on one line, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}
