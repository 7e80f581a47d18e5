//! `skills/<id>/SKILL.md`: a group of tools with instructions, optionally a workflow of steps.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diagnostics::Diagnostics;
use crate::document::Document;

/// Most tools one parallel step may fan out to.
pub const MAX_PARALLEL_TOOLS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkillDefinition {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Tools this skill grants to the agents that use it.
    pub tools: Vec<String>,
    /// Workflow steps; empty when the skill is only a tool group.
    pub steps: Vec<WorkflowStep>,
    /// SKILL.md body, injected into the prompt.
    pub instructions: String,
    pub file: PathBuf,
}

impl SkillDefinition {
    pub fn has_workflow(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Every tool the skill uses: its `tools` plus those its steps call.
    pub fn all_tools(&self) -> Vec<String> {
        let mut all = self.tools.clone();
        for step in &self.steps {
            for tool in step.action.tools() {
                if !all.iter().any(|t| t == tool) {
                    all.push(tool.to_string());
                }
            }
        }
        all
    }
}

/// One step of a skill workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowStep {
    pub name: String,
    pub action: StepAction,
    /// Arguments; a string that is entirely `$.input.<path>` or `$.steps.<name>.output[.<path>]`
    /// is resolved when the step runs.
    pub input: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepAction {
    /// Call one tool with the step's input.
    Tool { tool: String },
    /// Call several tools at once; the output is the list of their results, in order.
    Parallel { calls: Vec<ParallelCall> },
    /// Ask the model; `input` values are available to the prompt text as `{{name}}`.
    Prompt {
        prompt: String,
        system_prompt: Option<String>,
    },
}

impl StepAction {
    pub fn tools(&self) -> Vec<&str> {
        match self {
            Self::Tool { tool } => vec![tool.as_str()],
            Self::Parallel { calls } => calls.iter().map(|c| c.tool.as_str()).collect(),
            Self::Prompt { .. } => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelCall {
    pub tool: String,
    #[serde(default)]
    pub input: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SkillFrontmatter {
    name: Option<String>,
    description: String,
    tools: Vec<String>,
    steps: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct RawStep {
    name: String,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    tools: Option<Vec<ParallelCall>>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    input: Map<String, Value>,
}

pub(crate) fn load_skill(
    id: &str,
    dir: &Path,
    diagnostics: &mut Diagnostics,
) -> Option<SkillDefinition> {
    let file = dir.join("SKILL.md");
    let doc = Document::read(&file, diagnostics)?;
    let fm: SkillFrontmatter = doc.typed(diagnostics)?;
    let mut steps: Vec<WorkflowStep> = Vec::new();
    for (i, mut raw) in fm.steps.into_iter().enumerate() {
        let at = format!("steps[{i}]");
        let Some(raw) = doc.typed_value::<RawStep>(&mut raw, &at, diagnostics) else {
            continue;
        };
        let line = doc.line_of(&at);
        if steps.iter().any(|s| s.name == raw.name) {
            diagnostics.error(&file, line, format!("duplicate step name '{}'", raw.name));
            continue;
        }
        let action = match (raw.tool, raw.tools, raw.prompt) {
            (Some(tool), None, None) => StepAction::Tool { tool },
            (None, Some(calls), None) => {
                if calls.is_empty() || calls.len() > MAX_PARALLEL_TOOLS {
                    diagnostics.error(
                        &file,
                        line,
                        format!(
                            "step '{}': a parallel step needs 1 to {MAX_PARALLEL_TOOLS} tools, got {}",
                            raw.name,
                            calls.len()
                        ),
                    );
                    continue;
                }
                StepAction::Parallel { calls }
            }
            (None, None, Some(prompt)) => StepAction::Prompt {
                prompt,
                system_prompt: raw.system_prompt,
            },
            _ => {
                diagnostics.error(
                    &file,
                    line,
                    format!(
                        "step '{}' must have exactly one of 'tool', 'tools' or 'prompt'",
                        raw.name
                    ),
                );
                continue;
            }
        };
        let step = WorkflowStep {
            name: raw.name,
            action,
            input: raw.input,
        };
        for reference in step_references(&step) {
            if !steps.iter().any(|s| s.name == reference) {
                diagnostics.error(
                    &file,
                    line,
                    format!(
                        "step '{}' refers to '$.steps.{reference}', which is not an earlier step",
                        step.name
                    ),
                );
            }
        }
        steps.push(step);
    }
    Some(SkillDefinition {
        id: id.to_string(),
        name: fm.name.unwrap_or_else(|| id.to_string()),
        description: fm.description,
        tools: fm.tools,
        steps,
        instructions: doc.body.trim().to_string(),
        file,
    })
}

/// Names of the steps a step's inputs refer to (`$.steps.<name>...`).
fn step_references(step: &WorkflowStep) -> Vec<String> {
    let mut values: Vec<&Value> = step.input.values().collect();
    if let StepAction::Parallel { calls } = &step.action {
        values.extend(calls.iter().flat_map(|c| c.input.values()));
    }
    values
        .into_iter()
        .filter_map(Value::as_str)
        .filter_map(|s| s.trim().strip_prefix("$.steps."))
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| *c != '.' && *c != '[')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}
