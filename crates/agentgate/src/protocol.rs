//! The wire protocol, shared by server and client: paths, headers, the manifest and the
//! error body.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Protocol version spoken by this crate.
pub const PROTOCOL_VERSION: &str = "1.0";
pub const MANIFEST_PATH: &str = "/.well-known/agent-manifest.json";
pub const HEADER_AGENT_REQUEST: &str = "x-agent-request";
pub const HEADER_AGENT_ID: &str = "x-agent-id";
pub const HEADER_AGENT_VERSION: &str = "x-agent-version";
pub const HEADER_SESSION_ID: &str = "x-session-id";

/// How a site authenticates calls (never the manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthDef {
    /// `api_key`, `bearer` or `none`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Header carrying the key for `api_key` (e.g. `X-API-Key`).
    #[serde(default)]
    pub header: Option<String>,
}

impl Default for AuthDef {
    fn default() -> Self {
        Self {
            kind: "none".into(),
            header: None,
        }
    }
}

/// A single-step capability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub endpoint: String,
    #[serde(default = "post")]
    pub method: String,
    #[serde(default)]
    pub input_schema: Value,
    #[serde(default)]
    pub output_schema: Value,
}

fn post() -> String {
    "POST".into()
}

/// Who holds a flow's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orchestration {
    /// The site keeps a session and enforces the order of steps.
    Server,
    /// Every step is a stateless call; the agent chains them.
    Client,
}

/// One step of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub entry: bool,
    /// Steps allowed right after this one.
    #[serde(default)]
    pub next_steps: Vec<String>,
    #[serde(default)]
    pub input_schema: Value,
    #[serde(default)]
    pub output_schema: Value,
}

/// A multi-step workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub orchestration: Orchestration,
    pub steps: Vec<StepDef>,
}

impl FlowDef {
    pub fn step(&self, name: &str) -> Option<&StepDef> {
        self.steps.iter().find(|s| s.name == name)
    }

    pub fn entry(&self) -> Option<&StepDef> {
        self.steps.iter().find(|s| s.entry)
    }
}

/// `/.well-known/agent-manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub agent_api_version: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The site's own version (ours; older clients ignore it).
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub auth: AuthDef,
    #[serde(default)]
    pub intents: Vec<IntentDef>,
    #[serde(default)]
    pub flows: Vec<FlowDef>,
}

impl Manifest {
    pub fn intent(&self, name: &str) -> Option<&IntentDef> {
        self.intents.iter().find(|i| i.name == name)
    }

    pub fn flow(&self, name: &str) -> Option<&FlowDef> {
        self.flows.iter().find(|f| f.name == name)
    }
}

/// The answer of `POST /agent/flows/{name}/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartResponse {
    pub session_id: String,
    pub entry_step: String,
    #[serde(default)]
    pub current_step: String,
    pub allowed_next_steps: Vec<String>,
    #[serde(default)]
    pub input_schema: Value,
}

/// The answer of a server-flow step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResponse {
    pub result: Value,
    pub session_id: String,
    pub current_step: String,
    pub allowed_next_steps: Vec<String>,
    pub flow_complete: bool,
}

/// One completed step of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub step_name: String,
    pub input: Value,
    pub output: Value,
}

/// The answer of `GET /agent/flows/{name}/session/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub session_id: String,
    pub flow_name: String,
    pub current_step: String,
    pub allowed_next_steps: Vec<String>,
    pub history: Vec<HistoryEntry>,
    pub data: Map<String, Value>,
    pub flow_complete: bool,
}

/// Every error: a stable code, a message, and for some codes more fields
/// (`current_step`/`allowed_next_steps`, `details`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_next_steps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<Value>>,
}
