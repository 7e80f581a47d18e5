//! One loaded generation of the workspace with everything derived from it: tools, compiled
//! schemas, the model client, the auth policy. Reload builds a new [`Generation`] and swaps it
//! in atomically; runs in flight keep the one they started with. Surfaces read the catalog
//! (agents, skills, tools, configuration) from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use gateway_llm::{CompletionRequest, LlmClient, Message, ModelTarget};
use gateway_workspace::{
    AgentDefinition, Diagnostics, ExternalNames, GatewayConfig, SkillDefinition, Workspace,
};
use jsonschema::Validator;
use model_script::Script;
use serde_json::Value;

use crate::auth::Authenticator;
use crate::llm_settings;
use crate::mcp::McpManager;
use crate::memory::MemoryBank;
use crate::outbound::OutboundPolicy;
use crate::runner::Runner;
use crate::tools::workflow::WorkflowHost;
use crate::tools::{FileTool, SharedTool, ToolInfo, ToolRegistry};

/// Models chosen in code rather than in the workspace files (tests, host programs); every
/// generation applies them.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelOverrides {
    /// Every agent uses this model (its own, the default and fallbacks set aside).
    pub model: Option<String>,
    /// Scripts of `scripted/<name>` models, over the workspace's `replies/` files.
    pub scripts: BTreeMap<String, Script>,
}

/// Which model an agent gets besides its own settings.
#[derive(Debug, Clone)]
struct ModelChoice {
    /// The model of agents that name none: `model.default`, or `model.without_key` while the
    /// default's provider has no key.
    default: String,
    /// A model every agent uses ([`ModelOverrides::model`]).
    forced: Option<String>,
    /// Says that `model.without_key` stands in, and how to switch to the real model.
    stand_in: Option<String>,
}

impl ModelChoice {
    /// The choice for `workspace`, and the warning that announces `model.without_key` when
    /// it is in effect.
    fn new(workspace: &Workspace, llm: &LlmClient, forced: Option<String>) -> (Self, Diagnostics) {
        let model = &workspace.config.model;
        let mut diagnostics = Diagnostics::new();
        let mut choice = Self {
            default: model.default.clone(),
            forced,
            stand_in: None,
        };
        if let Some(stand_in) = &model.without_key
            && let Err(gateway_llm::LlmError::MissingCredential { env_var, .. }) =
                llm.check_model(&model.default)
        {
            let canned = if stand_in.starts_with("scripted/") {
                ", a scripted model: canned answers, not a real model's"
            } else {
                ""
            };
            let notice = format!(
                "no key for {default}: agents on the default model answer from {stand_in}{canned} \
                 (model.without_key). To use {default}, set {env_var} and restart, or change \
                 model.default in gateway.yaml.",
                default = model.default,
            );
            diagnostics.warning(&workspace.root.join("gateway.yaml"), None, notice.clone());
            choice.default = stand_in.clone();
            choice.stand_in = Some(notice);
        }
        (choice, diagnostics)
    }
}

/// What a generation is built from besides the workspace.
pub(crate) struct Parts<'a> {
    pub code_tools: &'a [SharedTool],
    /// Where agents' memories are kept (shared by every generation).
    pub memories: Arc<dyn gateway_store::AgentMemoryStore>,
    pub models: &'a ModelOverrides,
    /// Tools of the agentgate sites agents listed, and the problems met discovering them.
    pub site_tools: Vec<SharedTool>,
    pub site_diagnostics: Diagnostics,
    pub env: &'a BTreeMap<String, String>,
    /// How the delegation tool runs other agents.
    pub runner: Arc<dyn Runner>,
    pub mcp: Arc<McpManager>,
    /// The auth policy of this generation (`None`: auth off).
    pub auth: Option<Arc<Authenticator>>,
    /// Counts generations: 1 for the first, one more per reload.
    pub number: u64,
}

/// One loaded workspace and what is derived from it.
pub struct Generation {
    pub(crate) workspace: Workspace,
    pub(crate) tools: ToolRegistry,
    /// Compiled argument schemas of every registered tool.
    pub(crate) tool_validators: Arc<HashMap<String, Arc<Validator>>>,
    /// Compiled `input_schema` / `output_schema` by agent id.
    pub(crate) input_validators: HashMap<String, Arc<Validator>>,
    pub(crate) output_validators: HashMap<String, (Value, Arc<Validator>)>,
    pub(crate) llm: LlmClient,
    models: ModelChoice,
    /// Agents' memories and each agent's memory settings.
    pub(crate) memory: MemoryBank,
    /// Loading problems plus reference checks (what `check` prints).
    pub(crate) diagnostics: Diagnostics,
    /// MCP servers (shared by every generation): their tools change as servers reconnect.
    pub(crate) mcp: Arc<McpManager>,
    /// Who may call (`None`: auth is off).
    pub(crate) auth: Option<Arc<Authenticator>>,
    /// Where URLs from configuration and the admin API may lead.
    pub(crate) outbound: OutboundPolicy,
    number: u64,
}

impl Generation {
    pub(crate) fn build(workspace: Workspace, parts: Parts<'_>) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<Generation>| {
            let host: Weak<dyn WorkflowHost> = me.clone();
            Self::assemble(workspace, parts, host)
        })
    }

    fn assemble(mut workspace: Workspace, parts: Parts<'_>, host: Weak<dyn WorkflowHost>) -> Self {
        let Parts {
            code_tools,
            memories,
            models,
            site_tools: extra_tools,
            site_diagnostics,
            env,
            runner,
            mcp,
            auth,
            number,
        } = parts;
        workspace.model_scripts.extend(models.scripts.clone());
        let config = &workspace.config;
        let file_tools: Vec<SharedTool> = workspace
            .tools
            .values()
            .map(|definition| {
                Arc::new(FileTool::new(definition.clone(), config.tools.clone())) as SharedTool
            })
            .collect();
        let llm = LlmClient::new(llm_settings::from_workspace(&workspace, env));
        let (choice, choice_notes) = ModelChoice::new(&workspace, &llm, models.model.clone());
        let memory = MemoryBank::new(memories, &workspace, &llm, |agent| {
            memory_model(&workspace.config, agent, &choice)
        });
        let mut extra_tools = extra_tools;
        extra_tools.extend(crate::memory::tools::all(&memory));
        if let Some(delegate) =
            crate::tools::delegate::DelegateTool::for_workspace(&workspace, runner)
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
            &host,
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

        let external = ExternalNames {
            tools: tools.all().map(|t| t.name().to_string()).collect(),
            mcp_servers: mcp.names().into_iter().collect(),
        };
        let mut diagnostics = workspace.all_diagnostics(&external);
        diagnostics.extend(choice_notes);
        diagnostics.extend(model_diagnostics(&workspace, &llm, &choice));
        diagnostics.extend(site_diagnostics);
        let outbound = OutboundPolicy::from_config(&workspace.config);
        Self {
            workspace,
            outbound,
            tools,
            tool_validators: Arc::new(tool_validators),
            input_validators,
            output_validators,
            llm,
            models: choice,
            memory,
            diagnostics,
            mcp,
            auth,
            number,
        }
    }

    /// Which generation this is: 1 for the first, one more per reload.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The configuration in effect.
    pub fn config(&self) -> &GatewayConfig {
        &self.workspace.config
    }

    /// Loading problems and reference checks.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// Whether callers must authenticate.
    pub fn auth_enabled(&self) -> bool {
        self.auth.is_some()
    }

    pub fn agent(&self, id: &str) -> Option<&AgentDefinition> {
        self.workspace.agents.get(id)
    }

    /// Every agent, by id.
    pub fn agents(&self) -> impl Iterator<Item = &AgentDefinition> {
        self.workspace.agents.values()
    }

    pub fn skill(&self, id: &str) -> Option<&SkillDefinition> {
        self.workspace.skills.get(id)
    }

    /// Every skill, by id.
    pub fn skills(&self) -> impl Iterator<Item = &SkillDefinition> {
        self.workspace.skills.values()
    }

    /// The names of the tools `agent` may call.
    pub fn agent_tool_names(&self, agent: &AgentDefinition) -> Vec<String> {
        self.agent_tools(agent)
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    /// Every tool, described, by name.
    pub fn tool_infos(&self) -> Vec<ToolInfo> {
        let mut infos: Vec<ToolInfo> = self.tools().iter().map(|t| ToolInfo::of(&**t)).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// The tools `agent` may call.
    pub(crate) fn agent_tools(&self, agent: &AgentDefinition) -> Vec<SharedTool> {
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
    pub(crate) fn tools(&self) -> Vec<SharedTool> {
        let mut tools: Vec<SharedTool> = self.tools.all().cloned().collect();
        for tool in self.mcp.all_tools() {
            if self.tools.get(tool.name()).is_none() {
                tools.push(tool);
            }
        }
        tools
    }

    pub(crate) fn model_target(&self, agent: &AgentDefinition) -> ModelTarget {
        model_target(&self.workspace.config, agent, &self.models)
    }

    /// The model `agent` answers with in this generation (`provider/model`): its own, the
    /// default (or `model.without_key`'s stand-in), or the one code forces.
    pub fn model_of(&self, agent: &AgentDefinition) -> String {
        self.model_target(agent).name
    }

    /// The model client of this generation (providers, keys, scripts as the workspace
    /// configures them): for work beside runs that needs a model, such as grading a test
    /// case's answer. Runs of agents go through the run pipeline, never through this.
    pub fn llm(&self) -> &LlmClient {
        &self.llm
    }

    /// The memory settings of `agent_id` (`None`: no such agent).
    pub fn memory_settings(&self, agent_id: &str) -> Option<&crate::memory::MemorySettings> {
        self.memory.settings(agent_id)
    }

    /// The model of agents that name none (`model.without_key`'s while it stands in).
    pub fn default_model(&self) -> &str {
        &self.models.default
    }

    /// When `model.without_key` stands in for the default model: what answers instead and
    /// how to switch (a server prints it at start).
    pub fn stand_in_notice(&self) -> Option<&str> {
        self.models.stand_in.as_deref()
    }
}

/// What a skill workflow asks of the generation it belongs to.
#[async_trait]
impl WorkflowHost for Generation {
    fn tool(&self, name: &str) -> Option<(SharedTool, Option<Arc<Validator>>)> {
        let tool = self.tools.get(name)?;
        Some((Arc::clone(tool), self.tool_validators.get(name).cloned()))
    }

    async fn complete(&self, agent_id: &str, messages: Vec<Message>) -> Result<String, String> {
        let agent = self
            .agent(agent_id)
            .ok_or_else(|| format!("agent '{agent_id}' not found"))?;
        let completion = self
            .llm
            .complete(
                &self.model_target(agent),
                &CompletionRequest {
                    messages,
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| format!("model call failed: {err}"))?;
        Ok(completion.text)
    }
}

/// Warnings for agents whose model (or fallback) cannot be called as configured: a missing
/// key is reported when the workspace is checked, not only when a call fails.
pub fn check_models(workspace: &Workspace, env: &BTreeMap<String, String>) -> Diagnostics {
    let llm = LlmClient::new(llm_settings::from_workspace(workspace, env));
    let (choice, mut diagnostics) = ModelChoice::new(workspace, &llm, None);
    diagnostics.extend(model_diagnostics(workspace, &llm, &choice));
    diagnostics
}

fn model_diagnostics(workspace: &Workspace, llm: &LlmClient, choice: &ModelChoice) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    for agent in workspace.agents.values() {
        let target = model_target(&workspace.config, agent, choice);
        let names = std::iter::once(target.name.clone()).chain(target.fallback.clone());
        for name in names {
            if let Err(err) = llm.check_model(&name) {
                diagnostics.warning(&agent.file, None, format!("agent '{}': {err}", agent.id));
            }
        }
    }
    if let Some(model) = &workspace.config.memory.embedding_model {
        let config_file = workspace.root.join("gateway.yaml");
        if let Err(err) = llm.check_model(model) {
            diagnostics.warning(&config_file, None, format!("memory.embedding_model: {err}"));
        } else if model.starts_with("anthropic/") || model.starts_with("claude-") {
            diagnostics.warning(
                &config_file,
                None,
                format!("memory.embedding_model '{model}': Anthropic offers no embeddings; recall will rank by keywords only"),
            );
        }
    }
    diagnostics
}

/// The model of an agent's memory work (extraction, compaction): `extraction_model` (the
/// agent's, else `gateway.yaml`'s), else the agent's own model; a model forced by code wins.
fn memory_model(
    config: &GatewayConfig,
    agent: &AgentDefinition,
    choice: &ModelChoice,
) -> ModelTarget {
    let named = agent
        .memory
        .extraction_model
        .clone()
        .or_else(|| config.memory.extraction_model.clone())
        .filter(|_| choice.forced.is_none());
    let target = match named {
        Some(name) => ModelTarget::new(name),
        None => model_target(config, agent, choice),
    };
    ModelTarget {
        temperature: Some(0.1),
        ..target
    }
}

/// The model an agent uses: its own settings over `gateway.yaml`'s `model` section, unless
/// code forces one model on every agent.
fn model_target(
    config: &GatewayConfig,
    agent: &AgentDefinition,
    choice: &ModelChoice,
) -> ModelTarget {
    let own = &agent.model;
    if let Some(forced) = &choice.forced {
        return ModelTarget {
            temperature: Some(own.temperature.unwrap_or(config.model.temperature)),
            max_tokens: Some(own.max_tokens.unwrap_or(config.model.max_tokens)),
            ..ModelTarget::new(forced.clone())
        };
    }
    let uses_default = own.name.is_none();
    ModelTarget {
        name: own.name.clone().unwrap_or_else(|| choice.default.clone()),
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
