//! One loaded generation of the workspace with everything derived from it: tools, compiled
//! schemas, the model client. Reload builds a new `Runtime` and swaps it in atomically;
//! requests in flight keep the one they started with.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gateway_llm::{LlmClient, ModelTarget};
use gateway_workspace::{AgentDefinition, Diagnostics, ExternalNames, GatewayConfig, Workspace};
use jsonschema::Validator;
use serde_json::Value;

use crate::auth::Authenticator;
use crate::gateway::GatewayHandle;
use crate::llm_settings;
use crate::mcp::McpManager;
use crate::tools::{FileTool, SharedTool, ToolRegistry};

/// What a runtime is built from besides the workspace.
pub(crate) struct Parts<'a> {
    pub code_tools: &'a [SharedTool],
    /// Tools of the agentgate sites agents listed, and the problems met discovering them.
    pub site_tools: Vec<SharedTool>,
    pub site_diagnostics: Diagnostics,
    pub env: &'a BTreeMap<String, String>,
    pub handle: &'a GatewayHandle,
    pub agentgate_sessions: Arc<dyn agentgate::server::SessionStore>,
    pub mcp: Arc<McpManager>,
    /// The auth policy of this generation (`None`: auth off).
    pub auth: Option<Arc<Authenticator>>,
}

pub(crate) struct Runtime {
    pub workspace: Workspace,
    pub tools: ToolRegistry,
    /// Compiled argument schemas of every registered tool.
    pub tool_validators: Arc<HashMap<String, Arc<Validator>>>,
    /// Compiled `input_schema` / `output_schema` by agent id.
    pub input_validators: HashMap<String, Arc<Validator>>,
    pub output_validators: HashMap<String, (Value, Arc<Validator>)>,
    pub llm: LlmClient,
    /// Loading problems plus reference checks (what `check` prints).
    pub diagnostics: Diagnostics,
    /// The agentgate endpoints publishing this generation's agents (when enabled).
    pub agentgate: Option<axum::Router>,
    /// MCP servers (shared by every generation): their tools change as servers reconnect.
    pub mcp: Arc<McpManager>,
    /// Who may call (`None`: auth is off).
    pub auth: Option<Arc<Authenticator>>,
}

impl Runtime {
    pub fn build(workspace: Workspace, parts: Parts<'_>) -> Self {
        let Parts {
            code_tools,
            site_tools: extra_tools,
            site_diagnostics,
            env,
            handle,
            agentgate_sessions,
            mcp,
            auth,
        } = parts;
        let config = &workspace.config;
        let file_tools: Vec<SharedTool> = workspace
            .tools
            .values()
            .map(|definition| {
                Arc::new(FileTool::new(definition.clone(), config.tools.clone())) as SharedTool
            })
            .collect();
        let mut extra_tools = extra_tools;
        if let Some(delegate) =
            crate::tools::delegate::DelegateTool::for_workspace(&workspace, handle)
        {
            extra_tools.push(Arc::new(delegate));
        }
        let taken: Vec<String> = code_tools
            .iter()
            .chain(file_tools.iter())
            .chain(extra_tools.iter())
            .map(|t| t.name().to_string())
            .collect();
        // A workflow calls its tools directly: it needs approval when one of them does.
        let approval_needed: Vec<String> = code_tools
            .iter()
            .chain(file_tools.iter())
            .chain(extra_tools.iter())
            .filter(|t| t.requires_approval())
            .map(|t| t.name().to_string())
            .collect();
        for workflow in crate::tools::workflow::WorkflowTool::for_workspace(
            &workspace,
            handle,
            &taken,
            &approval_needed,
        ) {
            extra_tools.push(Arc::new(workflow));
        }
        let tools = ToolRegistry::new(code_tools, file_tools, extra_tools);

        let mut tool_validators = HashMap::new();
        for tool in tools.all() {
            match gateway_workspace::schema::compile(tool.parameters()) {
                Ok(validator) => {
                    tool_validators.insert(tool.name().to_string(), Arc::new(validator));
                }
                Err(message) => {
                    tracing::warn!(tool = tool.name(), %message, "tool arguments will not be validated");
                }
            }
        }

        let compile = |schema: &Option<Value>| {
            schema.as_ref().and_then(|s| {
                gateway_workspace::schema::compile(s)
                    .ok()
                    .map(|v| (s.clone(), Arc::new(v)))
            })
        };
        let mut input_validators = HashMap::new();
        let mut output_validators = HashMap::new();
        for agent in workspace.agents.values() {
            if let Some((_, validator)) = compile(&agent.input_schema) {
                input_validators.insert(agent.id.clone(), validator);
            }
            if let Some(pair) = compile(&agent.output_schema) {
                output_validators.insert(agent.id.clone(), pair);
            }
        }

        let llm = LlmClient::new(llm_settings::from_config(config, env));
        let external = ExternalNames {
            tools: tools.all().map(|t| t.name().to_string()).collect(),
            mcp_servers: mcp.names().into_iter().collect(),
        };
        let mut diagnostics = workspace.all_diagnostics(&external);
        diagnostics.extend(model_diagnostics(&workspace, &llm));
        diagnostics.extend(site_diagnostics);
        let agentgate = if workspace.config.agentgate.enabled {
            match crate::publish::app(&workspace, handle, agentgate_sessions, auth.clone()) {
                Ok(app) => Some(app.router(&workspace.config.server.public_url)),
                Err(err) => {
                    diagnostics.warning(
                        &workspace.root,
                        None,
                        format!("agentgate manifest not published: {err}"),
                    );
                    None
                }
            }
        } else {
            None
        };
        Self {
            workspace,
            tools,
            tool_validators: Arc::new(tool_validators),
            input_validators,
            output_validators,
            llm,
            diagnostics,
            agentgate,
            mcp,
            auth,
        }
    }

    pub fn agent(&self, id: &str) -> Option<&AgentDefinition> {
        self.workspace.agents.get(id)
    }

    /// The tools `agent` may call.
    pub fn agent_tools(&self, agent: &AgentDefinition) -> Vec<SharedTool> {
        let names = self.workspace.tool_names_of(agent);
        let mut tools = self.tools.resolve_for_agent(&agent.id, &names);
        // MCP tools of the servers the agent lists; code and file tools win a name clash.
        for tool in self.mcp.tools_of(&agent.mcp_servers) {
            if self.tools.get(tool.name()).is_none() {
                tools.push(tool);
            }
        }
        tools
    }

    /// Every tool: the registry's, then MCP tools not shadowed by them.
    pub fn all_tools(&self) -> Vec<SharedTool> {
        let mut tools: Vec<SharedTool> = self.tools.all().cloned().collect();
        for tool in self.mcp.all_tools() {
            if self.tools.get(tool.name()).is_none() {
                tools.push(tool);
            }
        }
        tools
    }

    pub fn model_target(&self, agent: &AgentDefinition) -> ModelTarget {
        model_target(&self.workspace.config, agent)
    }
}

/// Warnings for agents whose model (or fallback) cannot be called as configured: a missing
/// key is reported when the workspace is checked, not only when a call fails.
pub fn check_models(workspace: &Workspace, env: &BTreeMap<String, String>) -> Diagnostics {
    let llm = LlmClient::new(llm_settings::from_config(&workspace.config, env));
    model_diagnostics(workspace, &llm)
}

fn model_diagnostics(workspace: &Workspace, llm: &LlmClient) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    for agent in workspace.agents.values() {
        let target = model_target(&workspace.config, agent);
        let names = std::iter::once(target.name.clone()).chain(target.fallback.clone());
        for name in names {
            if let Err(err) = llm.check_model(&name) {
                diagnostics.warning(&agent.file, None, format!("agent '{}': {err}", agent.id));
            }
        }
    }
    diagnostics
}

/// The model an agent uses: its own settings over `gateway.yaml`'s `model` section.
pub(crate) fn model_target(config: &GatewayConfig, agent: &AgentDefinition) -> ModelTarget {
    let own = &agent.model;
    let uses_default = own.name.is_none();
    ModelTarget {
        name: own
            .name
            .clone()
            .unwrap_or_else(|| config.model.default.clone()),
        temperature: Some(own.temperature.unwrap_or(config.model.temperature)),
        max_tokens: Some(own.max_tokens.unwrap_or(config.model.max_tokens)),
        api_base: own.api_base.clone().or_else(|| {
            uses_default
                .then(|| config.model.api_base.clone())
                .flatten()
        }),
        fallback: own
            .fallback
            .clone()
            .or_else(|| config.model.fallback.clone()),
    }
}
