//! `tests/*.yaml`: a workspace's own test cases (what `agents-gateway test` runs), parsed into
//! typed cases with every mistake reported at its file and line.
//!
//! A file names a default agent, model and judge model for its cases; each case names its
//! input (one message, or the user messages of a conversation), optionally a model override
//! or an inline script for a scripted model, and its assertions (`expect`). Unknown keys are
//! errors here (a misspelt assertion must not pass silently). Inline `replies` are a
//! scripted model's script, in the format of `replies/<name>.yaml`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use model_script::{Reply, Script};
use regex::Regex;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::diagnostics::Diagnostics;
use crate::lenient;
use crate::schema;
use crate::workspace::{ExternalNames, Workspace, suggest};
use crate::yaml::{self, PathSegment};

/// The folder of test files inside a workspace.
pub const TESTS_DIR: &str = "tests";

/// The model prefix of the in-process scripted provider.
pub const SCRIPTED_PREFIX: &str = "scripted/";

/// The scripted model a case with inline `replies` and no `model` of its own runs on.
pub const INLINE_MODEL: &str = "scripted/inline";

/// The pass mark of a judge assertion that sets none.
pub const DEFAULT_THRESHOLD: f64 = 0.7;

/// The name of the delegation tool (always known to tool assertions).
const DELEGATE_TOOL: &str = "delegate_to_agent";

/// One test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    pub path: PathBuf,
    /// The file name without its extension: the first half of a case's id.
    pub name: String,
    pub cases: Vec<TestCase>,
    text: String,
}

impl TestFile {
    /// The 1-based line of a key path such as `cases[2].expect.judge`.
    pub fn line_of(&self, key_path: &str) -> Option<usize> {
        yaml::locate(&self.text, &yaml::parse_path(key_path))
    }
}

/// One test case.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    /// Its position in the file (`cases[index]`).
    pub index: usize,
    /// The line where the case starts.
    pub line: Option<usize>,
    pub agent: String,
    pub input: CaseInput,
    /// Structured input fields.
    pub fields: Map<String, Value>,
    /// Runs on behalf of this user (personal agents).
    pub user: Option<String>,
    /// The user's setup of a personal agent, stored before the run.
    pub setup: Option<Map<String, Value>>,
    /// The model every agent of the case's gateway uses (the case's, else the file's; with
    /// inline replies and no model of its own, [`INLINE_MODEL`]).
    pub model: Option<String>,
    /// An inline script (`replies`) for `model`, a `scripted/` model.
    pub script: Option<Script>,
    /// The file's `judge_model`.
    pub judge_model: Option<String>,
    pub expect: Expectations,
}

impl TestCase {
    /// `<file>::<case>`, what `-k` matches.
    pub fn id(&self, file: &TestFile) -> String {
        format!("{}::{}", file.name, self.name)
    }

    /// The name of the script the inline replies feed (`<name>` of `scripted/<name>`).
    pub fn script_name(&self) -> Option<&str> {
        self.script.as_ref()?;
        self.model.as_deref()?.strip_prefix(SCRIPTED_PREFIX)
    }
}

/// What a case sends.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseInput {
    /// One invocation.
    Message(String),
    /// Chat turns in one session, in order.
    Conversation(Vec<String>),
}

impl CaseInput {
    /// The user messages, in order.
    pub fn messages(&self) -> Vec<&str> {
        match self {
            Self::Message(message) => vec![message.as_str()],
            Self::Conversation(turns) => turns.iter().map(String::as_str).collect(),
        }
    }
}

/// The assertions of a case (`expect`).
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// The run must fail (true) or complete (false, the default).
    pub error: bool,
    pub output_contains: Vec<String>,
    pub output_matches: Option<Regex>,
    pub output_equals: Option<String>,
    pub structured_schema: Option<Value>,
    pub structured_equals: Option<Value>,
    pub tools_called: Vec<String>,
    pub tools_not_called: Vec<String>,
    /// Calls made in this order (others may come between).
    pub tool_calls: Vec<ExpectedCall>,
    /// Model calls plus tool calls, at most.
    pub max_steps: Option<u32>,
    pub max_cost_usd: Option<f64>,
    /// The slowest turn's duration, at most.
    pub max_latency_ms: Option<u64>,
    pub judge: Option<Judge>,
}

/// A tool call a case expects.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedCall {
    pub name: String,
    /// Contained in the actual arguments (every key given, recursively) when set.
    pub arguments: Option<Value>,
}

/// A graded judgement of the answer by a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Judge {
    pub rubric: String,
    /// Passes when the score is at least this (0..=1).
    pub threshold: f64,
    /// The judge model (else the file's `judge_model`, else the model the case ran on).
    pub model: Option<String>,
}

/// Whether `expected` is contained in `actual`: objects by their keys (recursively), arrays
/// item by item, anything else equal.
pub fn contains_value(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => expected.iter().all(|(key, value)| {
            actual
                .get(key)
                .is_some_and(|found| contains_value(found, value))
        }),
        (Value::Array(actual), Value::Array(expected)) => {
            actual.len() == expected.len()
                && actual
                    .iter()
                    .zip(expected)
                    .all(|(a, e)| contains_value(a, e))
        }
        (Value::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        _ => actual == expected,
    }
}

/// The test files of the workspace at `root` (`tests/*.yaml` and `*.yml`, by name) and the
/// problems found in them. No `tests` folder means no files.
pub fn load(root: &Path) -> (Vec<TestFile>, Diagnostics) {
    let mut diagnostics = Diagnostics::new();
    let dir = root.join(TESTS_DIR);
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (files, diagnostics);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    paths.sort();
    let mut stems: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => {
                diagnostics.error(&path, None, format!("cannot read file: {err}"));
                continue;
            }
        };
        let Some(file) = parse(&path, &text, &mut diagnostics) else {
            continue;
        };
        if let Some(other) = stems.get(&file.name) {
            diagnostics.error(
                &path,
                None,
                format!(
                    "test file name '{}' is also used by {}: case ids (<file>::<case>) must be unique",
                    file.name,
                    other.display()
                ),
            );
            continue;
        }
        stems.insert(file.name.clone(), path.clone());
        files.push(file);
    }
    (files, diagnostics)
}

/// Parses one test file's text. `None` when nothing of it can be used; every problem is in
/// `diagnostics` (a file with any error must not run).
pub fn parse(path: &Path, text: &str, diagnostics: &mut Diagnostics) -> Option<TestFile> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let source = Source { path, text };
    let mut root = match yaml::parse(text) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(Value::Null) => {
            diagnostics.error(
                path,
                None,
                "empty test file: write `cases:` with at least one case",
            );
            return None;
        }
        Ok(_) => {
            diagnostics.error(path, Some(1), "a test file must be a mapping with `cases:`");
            return None;
        }
        Err(err) => {
            diagnostics.error(path, err.line, format!("invalid YAML: {}", err.message));
            return None;
        }
    };
    let raw: RawFile = source.typed(&mut root, "", diagnostics)?;
    let cases_value = match raw.cases {
        None => {
            diagnostics.error(path, None, "no `cases:` in this test file");
            return None;
        }
        Some(Value::Array(items)) if items.is_empty() => {
            diagnostics.error(path, source.line_of("cases"), "`cases` is empty");
            return None;
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            diagnostics.error(
                path,
                source.line_of("cases"),
                "`cases` must be a list of cases",
            );
            return None;
        }
    };
    let defaults = FileDefaults {
        agent: raw.agent,
        model: raw.model,
        judge_model: raw.judge_model,
    };
    let mut cases: Vec<TestCase> = Vec::new();
    let mut names = BTreeSet::new();
    for (index, value) in cases_value.into_iter().enumerate() {
        let at = format!("cases[{index}]");
        let name = value.get("name").and_then(Value::as_str).map(String::from);
        let duplicate = name
            .as_ref()
            .is_some_and(|name| !names.insert(name.clone()));
        if duplicate {
            diagnostics.error(
                path,
                source.line_of(&format!("{at}.name")),
                format!(
                    "duplicate case name '{}' in this file",
                    name.unwrap_or_default()
                ),
            );
        }
        let case = parse_case(&source, &at, index, value, &defaults, diagnostics);
        if let (Some(case), false) = (case, duplicate) {
            cases.push(case);
        }
    }
    Some(TestFile {
        path: path.to_path_buf(),
        name,
        cases,
        text: text.to_string(),
    })
}

/// Checks the cases against the workspace: their agents exist, and the tools their
/// assertions name are tools the agent may have (a file tool, a skill workflow, the
/// delegation tool, or a code tool of `external`). A tool of an MCP server or an agentgate
/// site cannot be known before the gateway runs: for an agent that has some, an unknown
/// tool is only a warning.
pub fn check_references(
    files: &[TestFile],
    workspace: &Workspace,
    external: &ExternalNames,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    let mut known: BTreeSet<String> = workspace.tools.keys().cloned().collect();
    known.extend(external.tools.iter().cloned());
    known.insert(DELEGATE_TOOL.to_string());
    for skill in workspace.skills.values().filter(|s| s.has_workflow()) {
        known.insert(skill.id.clone());
        known.insert(format!("{}_workflow", skill.id));
    }
    for file in files {
        for case in &file.cases {
            let at = format!("cases[{}]", case.index);
            let Some(agent) = workspace.agents.get(&case.agent) else {
                let line = file.line_of(&format!("{at}.agent")).or(case.line);
                diagnostics.error(
                    &file.path,
                    line,
                    format!(
                        "case '{}': unknown agent '{}'{}",
                        case.name,
                        case.agent,
                        suggest(&case.agent, workspace.agents.keys())
                    ),
                );
                continue;
            };
            let dynamic = !agent.mcp_servers.is_empty() || !agent.sites.is_empty();
            let named = case
                .expect
                .tools_called
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{at}.expect.tools_called[{i}]"), n))
                .chain(
                    case.expect
                        .tools_not_called
                        .iter()
                        .enumerate()
                        .map(|(i, n)| (format!("{at}.expect.tools_not_called[{i}]"), n)),
                )
                .chain(
                    case.expect
                        .tool_calls
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (format!("{at}.expect.tool_calls[{i}]"), &c.name)),
                );
            for (key, tool) in named {
                if known.contains(tool) {
                    continue;
                }
                let line = file.line_of(&key);
                let hint = suggest(tool, known.iter());
                if dynamic {
                    diagnostics.warning(
                        &file.path,
                        line,
                        format!(
                            "case '{}': no file defines tool '{tool}' (fine if one of agent '{}''s MCP servers or sites offers it){hint}",
                            case.name, agent.id
                        ),
                    );
                } else {
                    diagnostics.error(
                        &file.path,
                        line,
                        format!("case '{}': unknown tool '{tool}'{hint}", case.name),
                    );
                }
            }
        }
    }
    diagnostics
}

/// The text of a file and its path, for typed reading with lines.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, key_path: &str) -> Option<usize> {
        yaml::locate(self.text, &yaml::parse_path(key_path))
    }

    /// Deserializes `value` (at `base`) into `T`: each key of the wrong type is reported
    /// and dropped (its default applies) so that every mistake is reported in one pass;
    /// unknown keys are errors. `None` when a mistake leaves nothing to use; callers tell a
    /// value read with mistakes by the errors added.
    fn typed<T: DeserializeOwned>(
        &self,
        value: &mut Value,
        base: &str,
        diagnostics: &mut Diagnostics,
    ) -> Option<T> {
        let join = |path: &str| {
            let path = path.trim_matches('.');
            match (base.is_empty(), path.is_empty()) {
                (true, _) => path.to_string(),
                (false, true) => base.to_string(),
                (false, false) => format!("{base}.{path}"),
            }
        };
        if !value.is_object() {
            diagnostics.error(
                self.path,
                self.line_of(base),
                format!("'{base}' must be a mapping of keys"),
            );
            return None;
        }
        let max_rounds = value.as_object().map_or(1, Map::len) + 1;
        for _ in 0..max_rounds {
            match lenient::from_value::<T>(value) {
                Ok((typed, unknown)) => {
                    for key in &unknown {
                        let full = join(key);
                        diagnostics.error(
                            self.path,
                            self.line_of(&full),
                            format!("unknown key '{full}'"),
                        );
                    }
                    return Some(typed);
                }
                Err(err) => {
                    let full = join(&err.path);
                    let at = if full.is_empty() {
                        String::new()
                    } else {
                        format!("'{full}': ")
                    };
                    diagnostics.error(
                        self.path,
                        self.line_of(&full),
                        format!("{at}{}", err.message),
                    );
                    let top = yaml::parse_path(&err.path).into_iter().next();
                    let removed = match (top, value.as_object_mut()) {
                        (Some(PathSegment::Key(key)), Some(map)) => map.remove(&key).is_some(),
                        _ => false,
                    };
                    if !removed {
                        return None;
                    }
                }
            }
        }
        None
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawFile {
    agent: Option<String>,
    model: Option<String>,
    judge_model: Option<String>,
    cases: Option<Value>,
}

struct FileDefaults {
    agent: Option<String>,
    model: Option<String>,
    judge_model: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawCase {
    name: String,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    conversation: Option<Vec<String>>,
    #[serde(default)]
    input: Option<Map<String, Value>>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    setup: Option<Map<String, Value>>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    replies: Option<Value>,
    #[serde(default)]
    expect: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawExpect {
    error: bool,
    output_contains: Option<Value>,
    output_matches: Option<String>,
    output_equals: Option<String>,
    structured_schema: Option<Value>,
    structured_equals: Option<Value>,
    tools_called: Vec<String>,
    tools_not_called: Vec<String>,
    tool_calls: Vec<Value>,
    max_steps: Option<u32>,
    max_cost_usd: Option<f64>,
    max_latency_ms: Option<u64>,
    judge: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawCall {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawJudge {
    rubric: String,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    model: Option<String>,
}

fn parse_case(
    source: &Source<'_>,
    at: &str,
    index: usize,
    mut value: Value,
    defaults: &FileDefaults,
    diagnostics: &mut Diagnostics,
) -> Option<TestCase> {
    let path = source.path;
    let line = source.line_of(at);
    let errors_before = diagnostics.errors().count();
    let raw: RawCase = source.typed(&mut value, at, diagnostics)?;
    let label = format!("case '{}'", raw.name);
    let mut error = |key: &str, message: String| {
        let key = if key.is_empty() {
            at.to_string()
        } else {
            format!("{at}.{key}")
        };
        diagnostics.error(path, source.line_of(&key), format!("{label}: {message}"));
    };
    if raw.name.trim().is_empty() {
        error("name", "the name is empty".to_string());
    }
    let agent = raw.agent.clone().or_else(|| defaults.agent.clone());
    if agent.is_none() {
        error(
            "",
            "no agent: set `agent` on the case, or on the file for all its cases".to_string(),
        );
    }
    let input = match (raw.message, raw.conversation) {
        (Some(message), None) => Some(CaseInput::Message(message)),
        (None, Some(turns)) => {
            if turns.is_empty() {
                error(
                    "conversation",
                    "the conversation has no messages".to_string(),
                );
                None
            } else {
                Some(CaseInput::Conversation(turns))
            }
        }
        (Some(_), Some(_)) => {
            error(
                "conversation",
                "set either `message` or `conversation`, not both".to_string(),
            );
            None
        }
        (None, None) => {
            error(
                "",
                "no input: set `message` (one invocation) or `conversation` (chat turns)"
                    .to_string(),
            );
            None
        }
    };
    if let Some(input) = &input
        && input.messages().iter().any(|m| m.trim().is_empty())
    {
        let key = match input {
            CaseInput::Message(_) => "message",
            CaseInput::Conversation(_) => "conversation",
        };
        error(key, "a message is empty".to_string());
    }
    if raw.setup.is_some() && raw.user.is_none() {
        error(
            "setup",
            "`setup` is a user's setup of a personal agent: set `user` too".to_string(),
        );
    }
    let model = match (&raw.model, &raw.replies) {
        (Some(model), Some(_)) if !model.starts_with(SCRIPTED_PREFIX) => {
            error(
                "replies",
                format!(
                    "inline `replies` script a scripted model, but the case's model is '{model}' (use {SCRIPTED_PREFIX}<name>, or leave `model` out)"
                ),
            );
            None
        }
        (Some(model), _) => Some(model.clone()),
        (None, Some(_)) => Some(INLINE_MODEL.to_string()),
        (None, None) => defaults.model.clone(),
    };
    if model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        error("model", "the model name is empty".to_string());
    }
    let script = match raw.replies {
        None | Some(Value::Null) => None,
        Some(replies) => parse_script(source, &format!("{at}.replies"), replies, diagnostics),
    };
    let expect = match raw.expect {
        None | Some(Value::Null) => Some(Expectations::default()),
        Some(mut expect) => parse_expect(
            source,
            &format!("{at}.expect"),
            &label,
            &mut expect,
            diagnostics,
        ),
    };
    let valid = diagnostics.errors().count() == errors_before;
    let (Some(agent), Some(input), Some(expect), true) = (agent, input, expect, valid) else {
        return None;
    };
    Some(TestCase {
        name: raw.name,
        index,
        line,
        agent,
        input,
        fields: raw.input.unwrap_or_default(),
        user: raw.user,
        setup: raw.setup,
        model,
        script,
        judge_model: defaults.judge_model.clone(),
        expect,
    })
}

/// Inline `replies`: a list of replies, or `{replies: [...], default: {...}}`.
fn parse_script(
    source: &Source<'_>,
    at: &str,
    value: Value,
    diagnostics: &mut Diagnostics,
) -> Option<Script> {
    match value {
        Value::Array(items) if items.is_empty() => {
            diagnostics.error(source.path, source.line_of(at), "`replies` is empty");
            None
        }
        Value::Array(items) => {
            let count = items.len();
            let replies: Vec<Reply> = items
                .into_iter()
                .enumerate()
                .filter_map(|(i, mut item)| {
                    source.typed::<Reply>(&mut item, &format!("{at}[{i}]"), diagnostics)
                })
                .collect();
            (replies.len() == count).then_some(Script {
                replies,
                default: None,
            })
        }
        mut value @ Value::Object(_) => source.typed::<Script>(&mut value, at, diagnostics),
        _ => {
            diagnostics.error(
                source.path,
                source.line_of(at),
                "`replies` must be a list of replies, or a mapping with `replies` and `default`",
            );
            None
        }
    }
}

fn parse_expect(
    source: &Source<'_>,
    at: &str,
    label: &str,
    value: &mut Value,
    diagnostics: &mut Diagnostics,
) -> Option<Expectations> {
    let errors_before = diagnostics.errors().count();
    let raw: RawExpect = source.typed(value, at, diagnostics)?;
    let error = |key: &str, message: String, diagnostics: &mut Diagnostics| {
        diagnostics.error(
            source.path,
            source.line_of(&format!("{at}.{key}")),
            format!("{label}: {message}"),
        );
    };
    let output_contains = match raw.output_contains {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![text],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(_) => {
            error(
                "output_contains",
                "`output_contains` must be a string or a list of strings".to_string(),
                diagnostics,
            );
            Vec::new()
        }
    };
    let output_matches = match raw.output_matches {
        None => None,
        Some(pattern) => match Regex::new(&pattern) {
            Ok(regex) => Some(regex),
            Err(err) => {
                let first = err
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                error(
                    "output_matches",
                    format!("invalid regular expression '{pattern}': {first}"),
                    diagnostics,
                );
                None
            }
        },
    };
    let structured_schema = match raw.structured_schema {
        None | Some(Value::Null) => None,
        Some(schema_value) => match schema::check_schema(&schema_value) {
            Ok(()) => Some(schema_value),
            Err(message) => {
                error(
                    "structured_schema",
                    format!("`structured_schema`: {message}"),
                    diagnostics,
                );
                None
            }
        },
    };
    let mut tool_calls = Vec::new();
    for (i, mut call) in raw.tool_calls.into_iter().enumerate() {
        let key = format!("{at}.tool_calls[{i}]");
        if let Value::String(name) = call {
            tool_calls.push(ExpectedCall {
                name,
                arguments: None,
            });
            continue;
        }
        if let Some(RawCall { name, arguments }) =
            source.typed::<RawCall>(&mut call, &key, diagnostics)
        {
            tool_calls.push(ExpectedCall {
                name,
                arguments: arguments.filter(|a| !a.is_null()),
            });
        }
    }
    let judge = match raw.judge {
        None | Some(Value::Null) => None,
        Some(Value::String(rubric)) => Some(Judge {
            rubric,
            threshold: DEFAULT_THRESHOLD,
            model: None,
        }),
        Some(mut judge) => {
            match source.typed::<RawJudge>(&mut judge, &format!("{at}.judge"), diagnostics) {
                None => None,
                Some(raw) => {
                    let threshold = raw.threshold.unwrap_or(DEFAULT_THRESHOLD);
                    if !(0.0..=1.0).contains(&threshold) {
                        error(
                            "judge.threshold",
                            format!("the judge's threshold {threshold} is outside 0..=1"),
                            diagnostics,
                        );
                    }
                    if raw.rubric.trim().is_empty() {
                        error(
                            "judge.rubric",
                            "the judge's rubric is empty".to_string(),
                            diagnostics,
                        );
                    }
                    Some(Judge {
                        rubric: raw.rubric,
                        threshold,
                        model: raw.model,
                    })
                }
            }
        }
    };
    if let Some(max_cost) = raw.max_cost_usd
        && (max_cost.is_nan() || max_cost < 0.0)
    {
        error(
            "max_cost_usd",
            format!("`max_cost_usd` must be 0 or more, not {max_cost}"),
            diagnostics,
        );
    }
    let valid = diagnostics.errors().count() == errors_before;
    valid.then_some(Expectations {
        error: raw.error,
        output_contains,
        output_matches,
        output_equals: raw.output_equals,
        structured_schema,
        structured_equals: raw.structured_equals.filter(|v| !v.is_null()),
        tools_called: raw.tools_called,
        tools_not_called: raw.tools_not_called,
        tool_calls,
        max_steps: raw.max_steps,
        max_cost_usd: raw.max_cost_usd,
        max_latency_ms: raw.max_latency_ms,
        judge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_text(text: &str) -> (Option<TestFile>, Diagnostics) {
        let mut diagnostics = Diagnostics::new();
        let file = parse(Path::new("tests/a.yaml"), text, &mut diagnostics);
        (file, diagnostics)
    }

    fn errors(diagnostics: &Diagnostics) -> Vec<String> {
        diagnostics.errors().map(ToString::to_string).collect()
    }

    const FULL: &str = "\
agent: assistant
model: scripted/example
judge_model: scripted/grader
cases:
  - name: tells the time
    message: What is the current time?
    input: {timezone: UTC}
    user: alice
    expect:
      output_contains: noon
      output_matches: '\\d+'
      output_equals: It is noon.
      structured_schema: {type: object}
      structured_equals: {a: 1}
      tools_called: [current-time]
      tools_not_called: [other]
      tool_calls:
        - {name: current-time, arguments: {timezone: UTC}}
        - current-time
      max_steps: 6
      max_cost_usd: 0.01
      max_latency_ms: 5000
      judge: {rubric: States a time., threshold: 0.5, model: scripted/judge}
  - name: talks
    agent: other
    conversation: [hi, again]
    replies:
      - text: hello
    expect:
      error: true
      output_contains: [a, b]
      judge: Is polite.
";

    #[test]
    fn parses_every_key() {
        let (file, diagnostics) = parse_text(FULL);
        assert!(diagnostics.is_empty(), "{:?}", errors(&diagnostics));
        let file = file.unwrap();
        assert_eq!(file.name, "a");
        assert_eq!(file.cases.len(), 2);
        let first = &file.cases[0];
        assert_eq!(first.id(&file), "a::tells the time");
        assert_eq!(first.agent, "assistant");
        assert_eq!(first.line, Some(5));
        assert_eq!(
            first.input,
            CaseInput::Message("What is the current time?".into())
        );
        assert_eq!(first.fields["timezone"], "UTC");
        assert_eq!(first.user.as_deref(), Some("alice"));
        assert_eq!(first.model.as_deref(), Some("scripted/example"));
        assert_eq!(first.judge_model.as_deref(), Some("scripted/grader"));
        assert_eq!(first.script_name(), None);
        let expect = &first.expect;
        assert!(!expect.error);
        assert_eq!(expect.output_contains, vec!["noon"]);
        assert!(expect.output_matches.as_ref().unwrap().is_match("12"));
        assert_eq!(expect.output_equals.as_deref(), Some("It is noon."));
        assert_eq!(expect.structured_schema, Some(json!({"type": "object"})));
        assert_eq!(expect.structured_equals, Some(json!({"a": 1})));
        assert_eq!(expect.tools_called, vec!["current-time"]);
        assert_eq!(expect.tools_not_called, vec!["other"]);
        assert_eq!(
            expect.tool_calls,
            vec![
                ExpectedCall {
                    name: "current-time".into(),
                    arguments: Some(json!({"timezone": "UTC"}))
                },
                ExpectedCall {
                    name: "current-time".into(),
                    arguments: None
                }
            ]
        );
        assert_eq!(expect.max_steps, Some(6));
        assert_eq!(expect.max_cost_usd, Some(0.01));
        assert_eq!(expect.max_latency_ms, Some(5000));
        assert_eq!(
            expect.judge,
            Some(Judge {
                rubric: "States a time.".into(),
                threshold: 0.5,
                model: Some("scripted/judge".into())
            })
        );
        let second = &file.cases[1];
        assert_eq!(second.agent, "other");
        assert_eq!(
            second.input.messages(),
            vec!["hi", "again"],
            "a conversation"
        );
        assert_eq!(second.model.as_deref(), Some(INLINE_MODEL));
        assert_eq!(second.script_name(), Some("inline"));
        assert_eq!(
            second.script,
            Some(Script {
                replies: vec![Reply::text("hello")],
                default: None
            })
        );
        assert!(second.expect.error);
        assert_eq!(second.expect.output_contains, vec!["a", "b"]);
        assert_eq!(
            second.expect.judge.as_ref().unwrap().threshold,
            DEFAULT_THRESHOLD
        );
    }

    #[test]
    fn reports_every_mistake_at_its_line() {
        let text = "\
cases:
  - name: one
    message: hi
    expect:
      output_contain: typo
      max_steps: lots
  - name: one
    agent: a
    message: hi
  - name: both
    agent: a
    message: hi
    conversation: [hi]
  - name: neither
    agent: a
  - name: patterns
    agent: a
    message: hi
    expect:
      output_matches: '(unclosed'
      structured_schema: {type: objekt}
      judge: {rubric: r, threshold: 1.5}
      tool_calls:
        - {arguments: {}}
  - name: replies
    agent: a
    message: hi
    model: openai/gpt-4o
    replies: [{text: x}]
  - name: bad replies
    agent: a
    message: hi
    replies:
      - text: x
      - txet: y
  - agent: a
    message: hi
  - name: colourful
    agent: a
    message: hi
    colour: blue
";
        let (file, diagnostics) = parse_text(text);
        let errors = errors(&diagnostics);
        let expected = [
            "tests/a.yaml:5: unknown key 'cases[0].expect.output_contain'",
            "tests/a.yaml:6: 'cases[0].expect.max_steps': invalid type",
            "tests/a.yaml:7: duplicate case name 'one'",
            "tests/a.yaml:13: case 'both': set either `message` or `conversation`, not both",
            "tests/a.yaml:14: case 'neither': no input",
            "tests/a.yaml:20: case 'patterns': invalid regular expression '(unclosed'",
            "tests/a.yaml:21: case 'patterns': `structured_schema`: invalid JSON Schema",
            "tests/a.yaml:22: case 'patterns': the judge's threshold 1.5 is outside 0..=1",
            "tests/a.yaml:24: 'cases[4].expect.tool_calls[0]': missing field `name`",
            "tests/a.yaml:29: case 'replies': inline `replies` script a scripted model",
            "tests/a.yaml:35: unknown key 'cases[6].replies[1].txet'",
            "tests/a.yaml:36: 'cases[7]': missing field `name`",
        ];
        for want in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in {errors:#?}"
            );
        }
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("tests/a.yaml:41: unknown key 'cases[8].colour'")),
            "{errors:#?}"
        );
        // The first case has no agent either (no file default).
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("tests/a.yaml:2: case 'one': no agent")),
            "{errors:#?}"
        );
        // Only the case without mistakes (the duplicate name aside) is kept: none here.
        assert!(file.unwrap().cases.is_empty());
    }

    #[test]
    fn rejects_files_without_cases() {
        for (text, want) in [
            ("", "tests/a.yaml: empty test file"),
            ("agent: a\n", "tests/a.yaml: no `cases:`"),
            ("cases: []\n", "tests/a.yaml:1: `cases` is empty"),
            ("- a\n", "tests/a.yaml:1: a test file must be a mapping"),
            ("cases: [\n", "tests/a.yaml:"),
            (
                "agent: a\ncases: {name: x}\n",
                "tests/a.yaml:2: `cases` must be a list",
            ),
        ] {
            let (file, diagnostics) = parse_text(text);
            assert!(file.is_none(), "{text:?}");
            let errors = errors(&diagnostics);
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "{text:?}: {errors:?}"
            );
        }
    }

    #[test]
    fn contains_values() {
        let actual = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        assert!(contains_value(&actual, &json!({})));
        assert!(contains_value(&actual, &json!({"a": 1.0})));
        assert!(contains_value(&actual, &json!({"b": {"d": "x"}})));
        assert!(contains_value(&actual, &json!({"b": {"c": [1, 2]}})));
        assert!(!contains_value(&actual, &json!({"b": {"c": [1]}})));
        assert!(!contains_value(&actual, &json!({"a": 2})));
        assert!(!contains_value(&actual, &json!({"z": null})));
    }

    #[test]
    fn loads_a_workspace_and_checks_references() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |relative: &str, content: &str| {
            let path = root.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        };
        write(
            "agents/assistant/AGENT.md",
            "---\ndescription: helps\ntools: [current-time]\n---\nHelp.\n",
        );
        write("tools/current-time/TOOL.md", "---\ndescription: now\n---\n");
        write(
            "tests/b.yml",
            "agent: assistant\ncases:\n  - name: ok\n    message: hi\n    expect:\n      tools_called: [current-time, delegate_to_agent]\n",
        );
        write(
            "tests/a.yaml",
            "cases:\n  - name: bad\n    agent: asistant\n    message: hi\n  - name: tools\n    agent: assistant\n    message: hi\n    expect:\n      tools_not_called:\n        - current-tim\n",
        );
        write("tests/notes.txt", "not a test file");
        let (files, diagnostics) = load(root);
        assert!(diagnostics.is_empty(), "{:?}", errors(&diagnostics));
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        let workspace = Workspace::load(root, &BTreeMap::new());
        let problems = check_references(&files, &workspace, &ExternalNames::default());
        let errors = errors(&problems);
        let a = root.join("tests/a.yaml");
        assert_eq!(
            errors,
            vec![
                format!(
                    "{}:3: case 'bad': unknown agent 'asistant' (did you mean 'assistant'?)",
                    a.display()
                ),
                format!(
                    "{}:10: case 'tools': unknown tool 'current-tim' (did you mean 'current-time'?)",
                    a.display()
                ),
            ]
        );
        let empty = tempfile::tempdir().unwrap();
        let (files, diagnostics) = load(empty.path());
        assert!(files.is_empty() && diagnostics.is_empty());
    }
}
