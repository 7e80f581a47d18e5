//! `tools/<id>/TOOL.md`: a file tool's declaration, and how to run its handler.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::diagnostics::Diagnostics;
use crate::document::Document;
use crate::schema;

/// How a file tool is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum ToolHandler {
    /// `handler.py` defining `handle(arguments, context)` or `handler(**arguments)`.
    Python(PathBuf),
    /// Any executable: JSON on stdin, JSON on stdout.
    Executable(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolPermissions {
    /// Agents that may call the tool; `None` means every agent that is given it.
    pub allowed_agents: Option<Vec<String>>,
    /// Each call waits for a human to approve it.
    pub require_approval: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDefinition {
    /// Folder name.
    pub id: String,
    /// Registry key; what skills and agents reference (defaults to the folder name).
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
    /// TOOL.md body.
    pub instructions: String,
    pub dir: PathBuf,
    pub file: PathBuf,
    pub handler: Option<ToolHandler>,
    pub permissions: ToolPermissions,
    /// Per-call time limit (ours); the gateway's default applies when unset.
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ToolFrontmatter {
    name: Option<String>,
    description: String,
    parameters: Option<Value>,
    permissions: ToolPermissions,
    handler: Option<String>,
    timeout_ms: Option<u64>,
}

pub(crate) fn load_tool(
    id: &str,
    dir: &Path,
    diagnostics: &mut Diagnostics,
) -> Option<ToolDefinition> {
    let file = dir.join("TOOL.md");
    let doc = Document::read(&file, diagnostics)?;
    let fm: ToolFrontmatter = doc.typed(diagnostics)?;
    let name = fm.name.unwrap_or_else(|| id.to_string());
    if !is_valid_tool_name(&name) {
        diagnostics.error(
            &file,
            doc.line_of("name"),
            format!("tool name '{name}' must be 1-64 letters, digits, '_' or '-'"),
        );
        return None;
    }
    if fm.description.trim().is_empty() {
        diagnostics.warning(
            &file,
            None,
            format!("tool '{name}' has no description: the model will not know when to use it"),
        );
    }
    let parameters = build_parameters(&doc, fm.parameters, diagnostics);
    if let Err(message) = schema::check_schema(&parameters) {
        diagnostics.error(
            &file,
            doc.line_of("parameters"),
            format!("'parameters': {message}"),
        );
        return None;
    }
    let handler = find_handler(dir, &doc, fm.handler.as_deref(), diagnostics);
    if handler.is_none() && fm.handler.is_none() {
        diagnostics.warning(
            &file,
            None,
            format!(
                "tool '{name}' has no handler (handler.py or an executable 'handler'): calls fail unless a code tool named '{name}' is registered"
            ),
        );
    }
    Some(ToolDefinition {
        id: id.to_string(),
        name,
        description: fm.description,
        parameters,
        instructions: doc.body.trim().to_string(),
        dir: dir.to_path_buf(),
        file: file.clone(),
        handler,
        permissions: fm.permissions,
        timeout_ms: fm.timeout_ms,
    })
}

/// Tool names are what models call; providers accept `^[a-zA-Z0-9_-]{1,64}$`.
pub fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Builds the arguments schema. Two spellings are accepted: 0.2.13's mapping of
/// `<param>: {type, description, required, enum, default}`, and (ours) a full JSON Schema
/// object with `type: object` and `properties`, used as written.
fn build_parameters(doc: &Document, raw: Option<Value>, diagnostics: &mut Diagnostics) -> Value {
    let params = match raw {
        None | Some(Value::Null) => return json!({"type": "object", "properties": {}}),
        Some(Value::Object(map)) => map,
        Some(_) => {
            diagnostics.error(
                &doc.path,
                doc.line_of("parameters"),
                "'parameters' must be a mapping of parameter names to definitions",
            );
            return json!({"type": "object", "properties": {}});
        }
    };
    let is_json_schema = params.get("type").and_then(Value::as_str) == Some("object")
        && params.get("properties").is_some_and(Value::is_object);
    if is_json_schema {
        return Value::Object(params);
    }
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, definition) in params {
        let Value::Object(mut definition) = definition else {
            diagnostics.warning(
                &doc.path,
                doc.line_of(&format!("parameters.{name}")),
                format!("parameter '{name}' is not a mapping (e.g. {{type: string}}): skipped"),
            );
            continue;
        };
        if definition.remove("required").and_then(|r| r.as_bool()) == Some(true) {
            required.push(Value::String(name.clone()));
        }
        definition
            .entry("type")
            .or_insert_with(|| Value::String("string".into()));
        definition
            .entry("description")
            .or_insert_with(|| Value::String(name.clone()));
        properties.insert(name, Value::Object(definition));
    }
    let mut schema = Map::new();
    schema.insert("type".into(), Value::String("object".into()));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    Value::Object(schema)
}

fn find_handler(
    dir: &Path,
    doc: &Document,
    declared: Option<&str>,
    diagnostics: &mut Diagnostics,
) -> Option<ToolHandler> {
    if let Some(relative) = declared {
        let path = dir.join(relative);
        let inside = path
            .canonicalize()
            .ok()
            .zip(dir.canonicalize().ok())
            .is_some_and(|(p, d)| p.starts_with(d));
        if !inside {
            diagnostics.error(
                &doc.path,
                doc.line_of("handler"),
                format!("handler '{relative}' does not exist inside the tool's folder"),
            );
            return None;
        }
        return classify(&path, doc, diagnostics);
    }
    let python = dir.join("handler.py");
    if python.is_file() {
        return Some(ToolHandler::Python(python));
    }
    let executable = dir.join("handler");
    if executable.is_file() {
        return classify(&executable, doc, diagnostics);
    }
    None
}

fn classify(path: &Path, doc: &Document, diagnostics: &mut Diagnostics) -> Option<ToolHandler> {
    if path.extension().is_some_and(|e| e == "py") {
        return Some(ToolHandler::Python(path.to_path_buf()));
    }
    if is_executable(path) {
        Some(ToolHandler::Executable(path.to_path_buf()))
    } else {
        diagnostics.error(
            &doc.path,
            doc.line_of("handler"),
            format!(
                "handler '{}' is not executable (chmod +x it, or use handler.py)",
                path.display()
            ),
        );
        None
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}
