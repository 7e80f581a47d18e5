//! `agents/<id>/AGENT.md`: one agent's settings (frontmatter) and prompt (body).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::ExecutionMode;
use crate::diagnostics::Diagnostics;
use crate::document::Document;
use crate::schedule;
use crate::schema;

/// Schedule instructions longer than this are cut (as 0.2.13 does).
pub const MAX_SCHEDULE_INSTRUCTIONS: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentScope {
    #[default]
    Global,
    /// Each user must complete the agent's `setup_schema` before using it.
    Personal,
}

/// An agent's model choice; unset fields fall back to `gateway.yaml`'s `model` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentModel {
    pub name: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub fallback: Option<String>,
    pub api_base: Option<String>,
}

/// An agent's `memory:` block: each key given overrides `gateway.yaml`'s `memory.<key>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentMemory {
    pub enabled: Option<bool>,
    pub auto_extract: Option<bool>,
    pub extract_on_invoke: Option<bool>,
    pub max_injected_chars: Option<usize>,
    pub max_memory_md_lines: Option<u32>,
    pub max_content_chars: Option<usize>,
    pub shared_writes: Option<bool>,
    pub extraction_model: Option<String>,
}

/// Per-agent limits that override `gateway.yaml`'s `guardrails` (ours).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentGuardrails {
    pub max_tool_calls: Option<u32>,
    pub max_iterations: Option<u32>,
    pub timeout_ms: Option<u64>,
}

/// Where to send a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationTarget {
    /// `slack` or `webhook`.
    pub channel: String,
    /// Slack channel, or the name of a webhook endpoint from `gateway.yaml`.
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub template: Option<String>,
    /// Inline webhook URL.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub payload_template: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentNotifications {
    pub on_complete: Vec<NotificationTarget>,
    pub on_error: Vec<NotificationTarget>,
    pub on_timeout: Vec<NotificationTarget>,
}

impl AgentNotifications {
    pub fn is_empty(&self) -> bool {
        self.on_complete.is_empty() && self.on_error.is_empty() && self.on_timeout.is_empty()
    }
}

/// A cron schedule declared in AGENT.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleDefinition {
    pub name: String,
    pub cron: String,
    pub message: String,
    #[serde(default)]
    pub input: Map<String, Value>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub timezone: Option<String>,
    /// Injected into the system prompt when this schedule runs.
    #[serde(default)]
    pub instructions: Option<String>,
}

fn yes() -> bool {
    true
}

/// A static context file appended to the prompt as reference material.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContextFile {
    pub path: PathBuf,
    pub content: String,
}

/// A fully loaded agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentDefinition {
    pub id: String,
    /// The agent's folder.
    pub dir: PathBuf,
    /// Its AGENT.md.
    pub file: PathBuf,
    pub description: String,
    pub display_name: Option<String>,
    pub tags: Vec<String>,
    pub version: Option<String>,
    /// The AGENT.md body.
    pub prompt: String,
    /// The agent's own BEHAVIOR.md body.
    pub behavior: Option<String>,
    pub skills: Vec<String>,
    /// Tools granted directly (ours; 0.2.13 granted file tools only through skills).
    pub tools: Vec<String>,
    pub model: AgentModel,
    pub execution_mode: ExecutionMode,
    pub schedules: Vec<ScheduleDefinition>,
    pub notifications: AgentNotifications,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub setup_schema: Option<Value>,
    /// `context/*.md` (alphabetical) then the files listed under `context:`.
    pub context_files: Vec<ContextFile>,
    pub retrievers: Vec<String>,
    pub mcp_servers: Vec<String>,
    /// agentgate sites whose intents and flows this agent may use as tools.
    pub sites: Vec<String>,
    pub memory: AgentMemory,
    /// Agents this one may delegate to; empty means any.
    pub delegates_to: Vec<String>,
    pub scope: AgentScope,
    pub enabled: bool,
    pub guardrails: AgentGuardrails,
}

impl AgentDefinition {
    /// The description shown in listings (0.2.13 shows `Agent: <id>` when empty).
    pub fn display_description(&self) -> String {
        if self.description.trim().is_empty() {
            format!("Agent: {}", self.id)
        } else {
            self.description.clone()
        }
    }

    /// Whether `other` is on this agent's delegation allow-list.
    pub fn may_delegate_to(&self, other: &str) -> bool {
        self.delegates_to.is_empty() || self.delegates_to.iter().any(|d| d == other)
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct AgentFrontmatter {
    description: String,
    display_name: Option<String>,
    tags: Vec<String>,
    version: Option<String>,
    skills: Vec<String>,
    tools: Vec<String>,
    model: Option<Value>,
    execution_mode: ExecutionMode,
    schedules: Vec<Value>,
    notifications: Option<AgentNotifications>,
    input_schema: Option<Value>,
    output_schema: Option<Value>,
    setup_schema: Option<Value>,
    context: Vec<String>,
    retrievers: Vec<String>,
    mcp_servers: Vec<String>,
    sites: Vec<String>,
    memory: AgentMemory,
    delegates_to: Vec<String>,
    scope: AgentScope,
    enabled: bool,
    guardrails: AgentGuardrails,
}

impl Default for AgentFrontmatter {
    fn default() -> Self {
        Self {
            description: String::new(),
            display_name: None,
            tags: Vec::new(),
            version: None,
            skills: Vec::new(),
            tools: Vec::new(),
            model: None,
            execution_mode: ExecutionMode::Sync,
            schedules: Vec::new(),
            notifications: None,
            input_schema: None,
            output_schema: None,
            setup_schema: None,
            context: Vec::new(),
            retrievers: Vec::new(),
            mcp_servers: Vec::new(),
            sites: Vec::new(),
            memory: AgentMemory::default(),
            delegates_to: Vec::new(),
            scope: AgentScope::Global,
            enabled: true,
            guardrails: AgentGuardrails::default(),
        }
    }
}

/// Loads `dir/AGENT.md` (plus BEHAVIOR.md and context files) for agent `id`.
/// `workspace_root` bounds the `context:` paths.
pub(crate) fn load_agent(
    id: &str,
    dir: &Path,
    workspace_root: &Path,
    max_context_chars: usize,
    diagnostics: &mut Diagnostics,
) -> Option<AgentDefinition> {
    let file = dir.join("AGENT.md");
    let doc = Document::read(&file, diagnostics)?;
    let fm: AgentFrontmatter = doc.typed(diagnostics)?;

    let prompt = doc.body.trim().to_string();
    if prompt.is_empty() {
        diagnostics.error(
            &file,
            None,
            "AGENT.md has no prompt: write the agent's instructions below the frontmatter",
        );
        return None;
    }

    let model = parse_model(&doc, fm.model, diagnostics);
    let schedules = parse_schedules(&doc, fm.schedules, diagnostics);
    let input_schema = checked_schema(&doc, "input_schema", fm.input_schema, diagnostics);
    let output_schema = checked_schema(&doc, "output_schema", fm.output_schema, diagnostics);
    let setup_schema = checked_schema(&doc, "setup_schema", fm.setup_schema, diagnostics);

    if fm.scope == AgentScope::Personal && setup_schema.is_none() {
        diagnostics.warning(
            &file,
            doc.line_of("scope"),
            "personal agent without a valid setup_schema: users have nothing to configure",
        );
    }
    if let (Some(schema), false) = (&input_schema, schedules.is_empty())
        && let Ok(validator) = schema::compile(schema)
    {
        for (i, entry) in schedules.iter().enumerate() {
            let problems = schema::violations(&validator, &Value::Object(entry.input.clone()));
            if !problems.is_empty() {
                diagnostics.warning(
                    &file,
                    doc.line_of(&format!("schedules[{i}].input")),
                    format!(
                        "schedule '{}': input does not match input_schema: {}",
                        entry.name,
                        schema::lines(&problems).join("; ")
                    ),
                );
            }
        }
    }
    for (key, value) in [
        (
            "max_memory_md_lines",
            fm.memory.max_memory_md_lines.map(|v| v as usize),
        ),
        ("max_content_chars", fm.memory.max_content_chars),
    ] {
        if value == Some(0) {
            diagnostics.error(
                &file,
                doc.line_of(&format!("memory.{key}")),
                format!("'memory.{key}' must be at least 1"),
            );
        }
    }
    if fm.delegates_to.iter().any(|d| d == id) {
        diagnostics.error(
            &file,
            doc.line_of("delegates_to"),
            "an agent cannot delegate to itself",
        );
    }

    let behavior = read_optional_body(&dir.join("BEHAVIOR.md"), diagnostics);
    let context_files = load_context_files(
        &doc,
        dir,
        workspace_root,
        &fm.context,
        max_context_chars,
        diagnostics,
    );

    Some(AgentDefinition {
        id: id.to_string(),
        dir: dir.to_path_buf(),
        file: file.clone(),
        description: fm.description,
        display_name: fm.display_name,
        tags: fm.tags,
        version: fm.version,
        prompt,
        behavior,
        skills: dedup(fm.skills),
        tools: dedup(fm.tools),
        model,
        execution_mode: fm.execution_mode,
        schedules,
        notifications: fm.notifications.unwrap_or_default(),
        input_schema,
        output_schema,
        setup_schema,
        context_files,
        retrievers: fm.retrievers,
        mcp_servers: dedup(fm.mcp_servers),
        sites: dedup(fm.sites),
        memory: fm.memory,
        delegates_to: dedup(fm.delegates_to.into_iter().filter(|d| d != id).collect()),
        scope: fm.scope,
        enabled: fm.enabled,
        guardrails: fm.guardrails,
    })
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

fn parse_model(doc: &Document, raw: Option<Value>, diagnostics: &mut Diagnostics) -> AgentModel {
    match raw {
        None | Some(Value::Null) => AgentModel::default(),
        Some(Value::String(name)) => AgentModel {
            name: Some(name),
            ..AgentModel::default()
        },
        Some(mut value) => doc
            .typed_value::<AgentModel>(&mut value, "model", diagnostics)
            .unwrap_or_default(),
    }
}

fn parse_schedules(
    doc: &Document,
    raw: Vec<Value>,
    diagnostics: &mut Diagnostics,
) -> Vec<ScheduleDefinition> {
    let mut schedules: Vec<ScheduleDefinition> = Vec::new();
    for (i, mut value) in raw.into_iter().enumerate() {
        let at = format!("schedules[{i}]");
        let Some(mut entry) = doc.typed_value::<ScheduleDefinition>(&mut value, &at, diagnostics)
        else {
            continue;
        };
        let mut valid = true;
        if let Err(message) = schedule::parse_cron(&entry.cron) {
            diagnostics.error(
                &doc.path,
                doc.line_of(&format!("{at}.cron")),
                format!("schedule '{}': {message}", entry.name),
            );
            valid = false;
        }
        if let Some(tz) = &entry.timezone
            && let Err(message) = schedule::parse_timezone(tz)
        {
            diagnostics.error(
                &doc.path,
                doc.line_of(&format!("{at}.timezone")),
                format!("schedule '{}': {message}", entry.name),
            );
            valid = false;
        }
        if !is_valid_schedule_name(&entry.name) {
            diagnostics.error(
                &doc.path,
                doc.line_of(&format!("{at}.name")),
                format!(
                    "schedule name '{}' may only contain letters, digits, '_', '.' and '-'",
                    entry.name
                ),
            );
            valid = false;
        }
        if schedules.iter().any(|s| s.name == entry.name) {
            diagnostics.error(
                &doc.path,
                doc.line_of(&format!("{at}.name")),
                format!("duplicate schedule name '{}'", entry.name),
            );
            valid = false;
        }
        if let Some(instructions) = &mut entry.instructions
            && instructions.chars().count() > MAX_SCHEDULE_INSTRUCTIONS
        {
            diagnostics.warning(
                &doc.path,
                doc.line_of(&format!("{at}.instructions")),
                format!(
                    "schedule '{}': instructions cut to {MAX_SCHEDULE_INSTRUCTIONS} characters",
                    entry.name
                ),
            );
            *instructions = instructions
                .chars()
                .take(MAX_SCHEDULE_INSTRUCTIONS)
                .collect();
        }
        if valid {
            schedules.push(entry);
        }
    }
    schedules
}

/// Schedule names become part of schedule ids (`<agent>:<name>`).
pub fn is_valid_schedule_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn checked_schema(
    doc: &Document,
    key: &str,
    schema: Option<Value>,
    diagnostics: &mut Diagnostics,
) -> Option<Value> {
    let schema = schema.filter(|s| !s.is_null())?;
    match schema::check_schema(&schema) {
        Ok(()) => Some(schema),
        Err(message) => {
            diagnostics.error(&doc.path, doc.line_of(key), format!("'{key}': {message}"));
            None
        }
    }
}

/// The body of an optional markdown file (frontmatter stripped); `None` when absent or empty.
pub(crate) fn read_optional_body(path: &Path, diagnostics: &mut Diagnostics) -> Option<String> {
    if !path.is_file() {
        return None;
    }
    let doc = Document::read(path, diagnostics)?;
    let body = doc.body.trim();
    (!body.is_empty()).then(|| body.to_string())
}

fn load_context_files(
    doc: &Document,
    agent_dir: &Path,
    workspace_root: &Path,
    listed: &[String],
    max_chars: usize,
    diagnostics: &mut Diagnostics,
) -> Vec<ContextFile> {
    let mut files = Vec::new();
    let context_dir = agent_dir.join("context");
    if context_dir.is_dir() {
        match std::fs::read_dir(&context_dir) {
            Ok(entries) => {
                let mut paths: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|ext| ext == "md"))
                    .collect();
                paths.sort();
                for path in paths {
                    if let Some(file) = read_context_file(&path, max_chars, diagnostics) {
                        files.push(file);
                    }
                }
            }
            Err(err) => diagnostics.error(
                &context_dir,
                None,
                format!("cannot list context files: {err}"),
            ),
        }
    }
    let root = workspace_root
        .canonicalize()
        .unwrap_or_else(|_| workspace_root.to_path_buf());
    for (i, relative) in listed.iter().enumerate() {
        let line = doc.line_of(&format!("context[{i}]"));
        let candidate = workspace_root.join(relative);
        let resolved = match candidate.canonicalize() {
            Ok(resolved) => resolved,
            Err(err) => {
                diagnostics.error(&doc.path, line, format!("context file '{relative}': {err}"));
                continue;
            }
        };
        if !resolved.starts_with(&root) {
            diagnostics.error(
                &doc.path,
                line,
                format!("context file '{relative}' is outside the workspace folder"),
            );
            continue;
        }
        if let Some(file) = read_context_file(&resolved, max_chars, diagnostics) {
            files.push(file);
        }
    }
    files
}

fn read_context_file(
    path: &Path,
    max_chars: usize,
    diagnostics: &mut Diagnostics,
) -> Option<ContextFile> {
    match std::fs::read_to_string(path) {
        Ok(content) => {
            let content = if content.chars().count() > max_chars {
                content.chars().take(max_chars).collect()
            } else {
                content
            };
            Some(ContextFile {
                path: path.to_path_buf(),
                content,
            })
        }
        Err(err) => {
            diagnostics.error(path, None, format!("cannot read context file: {err}"));
            None
        }
    }
}
