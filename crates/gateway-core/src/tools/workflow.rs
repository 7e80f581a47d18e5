//! Skill workflows: a SKILL.md with `steps` becomes one tool its agents can call. Steps run
//! in order (a `tools:` step fans out in parallel); their inputs may refer to the workflow's
//! input (`$.input.<path>`) and to earlier outputs (`$.steps.<name>.output[.<path>]`); the
//! last step's output is the result.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use gateway_llm::Message;
use gateway_workspace::skill::{MAX_PARALLEL_TOOLS, ParallelCall};
use gateway_workspace::{SkillDefinition, StepAction, Workspace};
use jsonschema::Validator;
use serde_json::{Map, Value, json};

use super::{SharedTool, Tool, ToolContext, ToolError, ToolSource};

/// What a workflow needs from the workspace generation it belongs to: its tools and its
/// agents' models. Defined here so that the workflow never names the generation's type.
#[async_trait]
pub trait WorkflowHost: Send + Sync {
    /// A tool by name, with its compiled argument schema.
    fn tool(&self, name: &str) -> Option<(SharedTool, Option<Arc<Validator>>)>;
    /// One model call with `agent_id`'s model; the answer's text.
    async fn complete(&self, agent_id: &str, messages: Vec<Message>) -> Result<String, String>;
}

/// Longest a whole workflow may run.
const WORKFLOW_TIMEOUT: Duration = Duration::from_secs(300);

pub struct WorkflowTool {
    name: String,
    description: String,
    parameters: Value,
    skill: SkillDefinition,
    agents: Vec<String>,
    /// The generation the tool belongs to (weak: the generation holds the tool).
    host: Weak<dyn WorkflowHost>,
    /// One of its steps calls a tool that requires approval.
    requires_approval: bool,
}

/// The names the workflow reads from `$.input`, in first-use order.
fn input_names(skill: &SkillDefinition) -> Vec<String> {
    fn collect(value: &Value, names: &mut Vec<String>) {
        match value {
            Value::String(text) => {
                if let Some(rest) = text.trim().strip_prefix("$.input.") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| *c != '.' && *c != '[')
                        .collect();
                    if !name.is_empty() && !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, names)),
            Value::Object(map) => map.values().for_each(|v| collect(v, names)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    for step in &skill.steps {
        step.input.values().for_each(|v| collect(v, &mut names));
        if let StepAction::Parallel { calls } = &step.action {
            for call in calls {
                call.input.values().for_each(|v| collect(v, &mut names));
            }
        }
    }
    names
}

impl WorkflowTool {
    /// One tool per skill with steps, given to the agents that use the skill. `taken` holds
    /// the names already in use: a clashing skill id gets a `_workflow` suffix.
    /// `approval_needed` names the tools that require approval.
    pub(crate) fn for_workspace(
        workspace: &Workspace,
        host: &Weak<dyn WorkflowHost>,
        taken: &[String],
        approval_needed: &[String],
    ) -> Vec<Self> {
        workspace
            .skills
            .values()
            .filter(|s| s.has_workflow())
            .map(|skill| {
                let name = if taken.contains(&skill.id) { format!("{}_workflow", skill.id) } else { skill.id.clone() };
                let inputs = input_names(skill);
                let properties: Map<String, Value> = inputs
                    .iter()
                    .map(|n| (n.clone(), json!({"type": "string", "description": format!("Workflow input '{n}'")})))
                    .collect();
                let steps: Vec<&str> = skill.steps.iter().map(|s| s.name.as_str()).collect();
                let agents = workspace
                    .agents
                    .values()
                    .filter(|a| a.skills.contains(&skill.id))
                    .map(|a| a.id.clone())
                    .collect();
                Self {
                    name,
                    description: format!("{} (workflow: {})", skill.description.trim(), steps.join(" → ")),
                    parameters: json!({"type": "object", "properties": properties, "required": inputs}),
                    skill: skill.clone(),
                    agents,
                    host: host.clone(),
                    requires_approval: skill
                        .steps
                        .iter()
                        .flat_map(|s| s.action.tools())
                        .any(|t| approval_needed.iter().any(|n| n == t)),
                }
            })
            .collect()
    }
}

/// Follows a dotted path (`a.b[2].c`) into `value`.
fn navigate<'a>(mut value: &'a Value, path: &str) -> Option<&'a Value> {
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            value = value.get(key)?;
        }
        let mut rest = indexes;
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']')?;
            value = value.get(inner[..close].parse::<usize>().ok()?)?;
            rest = &inner[close + 1..];
        }
    }
    Some(value)
}

/// What the steps have produced so far, and the workflow's input.
struct Scope {
    input: Value,
    outputs: BTreeMap<String, Value>,
}

impl Scope {
    /// Resolves references anywhere in `value`; anything else is taken literally and an
    /// unresolvable reference is `null`.
    fn resolve(&self, value: &Value) -> Value {
        match value {
            Value::String(text) => {
                let text = text.trim();
                if let Some(path) = text.strip_prefix("$.input") {
                    navigate(&self.input, path).cloned().unwrap_or(Value::Null)
                } else if let Some(rest) = text.strip_prefix("$.steps.") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| *c != '.' && *c != '[')
                        .collect();
                    let path = rest[name.len()..].trim_start_matches('.');
                    let Some(output) = self.outputs.get(&name) else {
                        return Value::Null;
                    };
                    let path = path.strip_prefix("output").unwrap_or(path);
                    navigate(output, path).cloned().unwrap_or(Value::Null)
                } else {
                    value.clone()
                }
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.resolve(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn arguments(&self, input: &Map<String, Value>) -> Value {
        Value::Object(
            input
                .iter()
                .map(|(k, v)| (k.clone(), self.resolve(v)))
                .collect(),
        )
    }
}

/// `{{name}}` in a prompt replaced by the step's resolved inputs.
fn render(template: &str, arguments: &Value) -> String {
    let mut text = template.to_string();
    if let Some(map) = arguments.as_object() {
        for (name, value) in map {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text = text
                .replace(&format!("{{{{{name}}}}}"), &shown)
                .replace(&format!("{{{{ {name} }}}}"), &shown);
        }
    }
    text
}

impl WorkflowTool {
    async fn run_tool(
        &self,
        host: &dyn WorkflowHost,
        tool: &str,
        arguments: Value,
        context: &ToolContext,
    ) -> Result<Value, String> {
        let (target, validator) = host
            .tool(tool)
            .ok_or_else(|| format!("unknown tool '{tool}'"))?;
        if !target.allows_agent(&context.agent_id) {
            return Err(format!(
                "tool '{tool}' is not permitted for agent '{}'",
                context.agent_id
            ));
        }
        if let Some(validator) = validator {
            let problems = gateway_workspace::schema::violations(&validator, &arguments);
            if !problems.is_empty() {
                return Err(format!(
                    "invalid arguments for '{tool}': {}",
                    gateway_workspace::schema::lines(&problems).join("; ")
                ));
            }
        }
        target
            .call(arguments, context)
            .await
            .map_err(|err| format!("'{tool}' failed: {err}"))
    }

    async fn run_prompt(
        &self,
        host: &dyn WorkflowHost,
        prompt: &str,
        system: Option<&str>,
        context: &ToolContext,
    ) -> Result<Value, String> {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(Message::system(system));
        }
        messages.push(Message::user(prompt));
        host.complete(&context.agent_id, messages)
            .await
            .map(Value::String)
    }

    async fn run_steps(&self, arguments: Value, context: &ToolContext) -> Result<Value, ToolError> {
        let host = self
            .host
            .upgrade()
            .ok_or_else(|| ToolError::failed("the workspace generation is gone"))?;
        let host: &dyn WorkflowHost = host.as_ref();
        let mut scope = Scope {
            input: arguments,
            outputs: BTreeMap::new(),
        };
        let mut last = Value::Null;
        for step in &self.skill.steps {
            let failed = |message: String| {
                ToolError::failed(format!(
                    "workflow '{}': step '{}' failed: {message}",
                    self.skill.id, step.name
                ))
            };
            let output = match &step.action {
                StepAction::Tool { tool } => self
                    .run_tool(host, tool, scope.arguments(&step.input), context)
                    .await
                    .map_err(failed)?,
                StepAction::Parallel { calls } => {
                    let pending: Vec<_> = calls
                        .iter()
                        .map(|ParallelCall { tool, input }| {
                            let mut merged = step.input.clone();
                            merged.extend(input.clone());
                            let arguments = scope.arguments(&merged);
                            async move { self.run_tool(host, tool, arguments, context).await }
                        })
                        .collect();
                    let results: Vec<Result<Value, String>> = futures::stream::iter(pending)
                        .buffered(MAX_PARALLEL_TOOLS)
                        .collect()
                        .await;
                    let mut outputs = Vec::with_capacity(results.len());
                    for result in results {
                        outputs.push(result.map_err(failed)?);
                    }
                    Value::Array(outputs)
                }
                StepAction::Prompt {
                    prompt,
                    system_prompt,
                } => {
                    let text = render(prompt, &scope.arguments(&step.input));
                    self.run_prompt(host, &text, system_prompt.as_deref(), context)
                        .await
                        .map_err(failed)?
                }
            };
            scope.outputs.insert(step.name.clone(), output.clone());
            last = output;
        }
        Ok(last)
    }
}

#[async_trait]
impl Tool for WorkflowTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> &Value {
        &self.parameters
    }

    fn source(&self) -> ToolSource {
        ToolSource::Builtin
    }

    fn requires_approval(&self) -> bool {
        self.requires_approval
    }

    fn granted_to(&self) -> &[String] {
        &self.agents
    }

    fn instructions(&self) -> &str {
        &self.skill.instructions
    }

    async fn call(&self, arguments: Value, context: &ToolContext) -> Result<Value, ToolError> {
        match tokio::time::timeout(WORKFLOW_TIMEOUT, self.run_steps(arguments, context)).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::failed(format!(
                "workflow '{}' did not finish within {} s",
                self.skill.id,
                WORKFLOW_TIMEOUT.as_secs()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_paths_indexes_and_nothing() {
        let scope = Scope {
            input: json!({"city": "Oslo", "tags": ["a", "b"]}),
            outputs: BTreeMap::from([
                (
                    "fetch".to_string(),
                    json!({"items": [{"id": 7}], "next": "x"}),
                ),
                ("both".to_string(), json!(["first", {"n": 2}])),
            ]),
        };
        assert_eq!(scope.resolve(&json!("$.input.city")), json!("Oslo"));
        assert_eq!(scope.resolve(&json!("$.input.tags[1]")), json!("b"));
        assert_eq!(
            scope.resolve(&json!("$.steps.fetch.output.items[0].id")),
            json!(7)
        );
        assert_eq!(
            scope.resolve(&json!("$.steps.fetch.output")),
            json!({"items": [{"id": 7}], "next": "x"})
        );
        assert_eq!(scope.resolve(&json!("$.steps.both.output[1].n")), json!(2));
        assert_eq!(scope.resolve(&json!("$.steps.missing.output")), Value::Null);
        assert_eq!(scope.resolve(&json!("$.input.nope")), Value::Null);
        assert_eq!(
            scope.resolve(&json!("literal $.input.city")),
            json!("literal $.input.city")
        );
        assert_eq!(scope.resolve(&json!(5)), json!(5));
        assert_eq!(
            scope.resolve(&json!({"nested": "$.input.city"})),
            json!({"nested": "Oslo"})
        );
    }

    #[test]
    fn prompts_render_inputs() {
        assert_eq!(
            render(
                "Summarise {{text}} for {{ who }}",
                &json!({"text": "this", "who": "me"})
            ),
            "Summarise this for me"
        );
        assert_eq!(
            render("Data: {{d}}", &json!({"d": {"a": 1}})),
            "Data: {\"a\":1}"
        );
    }
}
