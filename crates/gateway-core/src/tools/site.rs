//! agentgate sites as tools: an agent whose AGENT.md lists `sites: [URL]` can call those
//! sites' intents and drive their flows. Tools are namespaced by site: `<site>__<intent>`,
//! `<site>__<flow>__start` / `__step` for server flows, `<site>__<flow>__<step>` for client
//! flows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use agentgate::client::{AgentClient, ClientError, Site};
use agentgate::protocol::Orchestration;
use async_trait::async_trait;
use gateway_workspace::{Diagnostics, Workspace};
use serde_json::{Value, json};

use super::{SharedTool, Tool, ToolContext, ToolError, ToolSource};
use crate::outbound::OutboundPolicy;

/// What a site tool does.
#[derive(Debug, Clone)]
enum Call {
    Intent(String),
    /// Starts a server-flow session.
    Start(String),
    /// Runs the next step of a server-flow session.
    Step(String),
    /// One step of a client flow.
    ClientStep {
        flow: String,
        step: String,
    },
}

/// One capability of a site.
pub struct SiteTool {
    name: String,
    description: String,
    parameters: Value,
    call: Call,
    site: Site,
    /// Agents that list the site.
    agents: Vec<String>,
}

/// A site's name as a tool-name prefix: lowercase letters, digits and `_`.
fn namespace(name: &str, url: &str) -> String {
    let from = |text: &str| {
        let mut out = String::new();
        for c in text.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.ends_with('_') {
                out.push('_');
            }
        }
        out.trim_matches('_').to_string()
    };
    let named = from(name);
    if named.is_empty() {
        from(url.split("://").nth(1).unwrap_or(url))
    } else {
        named
    }
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

impl SiteTool {
    fn tools_of(site: &Site, url: &str, agents: &[String]) -> Vec<SiteTool> {
        let manifest = site.manifest();
        let ns = namespace(&manifest.name, url);
        let mut tools = Vec::new();
        let mut add = |name: String, description: String, parameters: Value, call: Call| {
            tools.push(SiteTool {
                name,
                description,
                parameters,
                call,
                site: site.clone(),
                agents: agents.to_vec(),
            });
        };
        for intent in &manifest.intents {
            add(
                format!("{ns}__{}", intent.name),
                format!("[{}] {}", manifest.name, intent.description),
                intent.input_schema.clone(),
                Call::Intent(intent.name.clone()),
            );
        }
        for flow in &manifest.flows {
            match flow.orchestration {
                Orchestration::Server => {
                    let steps: Vec<String> = flow
                        .steps
                        .iter()
                        .map(|s| {
                            let next = if s.next_steps.is_empty() {
                                "last".to_string()
                            } else {
                                format!("then {}", s.next_steps.join(" or "))
                            };
                            format!("{} ({next}; arguments: {})", s.name, s.input_schema)
                        })
                        .collect();
                    add(
                        format!("{ns}__{}__start", flow.name),
                        format!(
                            "[{}] Start the '{}' flow: {}. Returns a session_id; then run its steps in order with {ns}__{}__step. Steps: {}",
                            manifest.name,
                            flow.name,
                            flow.description,
                            flow.name,
                            steps.join("; ")
                        ),
                        object(json!({}), &[]),
                        Call::Start(flow.name.clone()),
                    );
                    add(
                        format!("{ns}__{}__step", flow.name),
                        format!(
                            "[{}] Run the next step of a '{}' session.",
                            manifest.name, flow.name
                        ),
                        object(
                            json!({
                                "session_id": {"type": "string", "description": "From the start tool"},
                                "step": {"type": "string", "description": "One of the allowed next steps"},
                                "arguments": {"type": "object", "description": "The step's named arguments"}
                            }),
                            &["session_id", "step"],
                        ),
                        Call::Step(flow.name.clone()),
                    );
                }
                Orchestration::Client => {
                    for step in &flow.steps {
                        add(
                            format!("{ns}__{}__{}", flow.name, step.name),
                            format!(
                                "[{}] Flow '{}', step '{}': {}",
                                manifest.name, flow.name, step.name, step.description
                            ),
                            step.input_schema.clone(),
                            Call::ClientStep {
                                flow: flow.name.clone(),
                                step: step.name.clone(),
                            },
                        );
                    }
                }
            }
        }
        tools
    }
}

fn failed(err: ClientError) -> ToolError {
    ToolError::failed(err.to_string())
}

#[async_trait]
impl Tool for SiteTool {
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
        ToolSource::Site
    }

    fn allows_agent(&self, agent_id: &str) -> bool {
        self.agents.iter().any(|a| a == agent_id)
    }

    fn granted_to(&self) -> &[String] {
        &self.agents
    }

    async fn call(&self, arguments: Value, _context: &ToolContext) -> Result<Value, ToolError> {
        match &self.call {
            Call::Intent(intent) => self
                .site
                .call_intent(intent, arguments)
                .await
                .map_err(failed),
            Call::Start(flow) => {
                let session = self
                    .site
                    .flow(flow)
                    .map_err(failed)?
                    .start()
                    .await
                    .map_err(failed)?;
                Ok(
                    json!({"session_id": session.session_id(), "allowed_next_steps": session.allowed_next_steps()}),
                )
            }
            Call::Step(flow) => {
                let session_id = arguments["session_id"].as_str().unwrap_or_default();
                let step = arguments["step"].as_str().unwrap_or_default();
                let step_arguments = match arguments.get("arguments") {
                    Some(Value::Object(map)) => Value::Object(map.clone()),
                    _ => json!({}),
                };
                let mut session = self
                    .site
                    .flow(flow)
                    .map_err(failed)?
                    .resume(session_id)
                    .await
                    .map_err(failed)?;
                let result = session.step(step, step_arguments).await.map_err(failed)?;
                Ok(json!({
                    "result": result,
                    "allowed_next_steps": session.allowed_next_steps(),
                    "flow_complete": session.is_complete(),
                }))
            }
            Call::ClientStep { flow, step } => self
                .site
                .flow(flow)
                .map_err(failed)?
                .call_step(step, arguments)
                .await
                .map_err(failed),
        }
    }
}

/// Discovers every site listed by an enabled agent and makes their tools. A site that cannot
/// be reached is a warning: its tools are missing until the next reload.
pub async fn discover(workspace: &Workspace) -> (Vec<SharedTool>, Diagnostics) {
    let mut diagnostics = Diagnostics::new();
    let mut by_site: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for agent in workspace.agents.values().filter(|a| a.enabled) {
        for url in &agent.sites {
            by_site
                .entry(url.trim_end_matches('/').to_string())
                .or_default()
                .insert(agent.id.clone());
        }
    }
    let config = &workspace.config;
    let timeout = Duration::from_millis(config.agentgate.discovery_timeout_ms.max(1));
    let mut tools: Vec<SharedTool> = Vec::new();
    let mut names = BTreeSet::new();
    if by_site.is_empty() {
        return (tools, diagnostics);
    }
    let outbound = OutboundPolicy::from_config(config);
    // One client for every site: its resolver applies the policy to each connection.
    let http = match outbound.client_builder().build() {
        Ok(http) => http,
        Err(err) => {
            diagnostics.warning(
                &workspace.root,
                None,
                format!("sites: no HTTP client ({err}); their tools are unavailable"),
            );
            return (tools, diagnostics);
        }
    };
    for (url, agents) in by_site {
        if let Err(err) = outbound.check_url(&url) {
            diagnostics.warning(
                &workspace.root,
                None,
                format!(
                    "site {url} (used by {}): {err}; its tools are unavailable",
                    agents.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        }
        let credentials = config
            .sites
            .get(&url)
            .or_else(|| config.sites.get(&format!("{url}/")))
            .cloned()
            .unwrap_or_default();
        let mut builder = AgentClient::builder()
            .http_client(http.clone())
            .request_headers(gateway_telemetry::context::outbound_headers)
            .agent_id("agents-gateway")
            .timeout(timeout);
        if let Some(key) = credentials.api_key {
            builder = builder.api_key(key);
        }
        if let Some(token) = credentials.bearer_token {
            builder = builder.bearer_token(token);
        }
        let agents: Vec<String> = agents.into_iter().collect();
        let site = match builder.build() {
            Ok(client) => client.discover(&url).await,
            Err(err) => Err(err),
        };
        match site {
            Ok(site) => {
                for tool in SiteTool::tools_of(&site, &url, &agents) {
                    if !gateway_workspace::tool::is_valid_tool_name(&tool.name)
                        || !names.insert(tool.name.clone())
                    {
                        diagnostics.warning(
                            &workspace.root,
                            None,
                            format!(
                                "site {url}: tool name '{}' is too long, invalid or taken; skipped",
                                tool.name
                            ),
                        );
                        continue;
                    }
                    tools.push(Arc::new(tool));
                }
            }
            Err(err) => diagnostics.warning(
                &workspace.root,
                None,
                format!(
                    "site {url} (used by {}): {err}; its tools are unavailable",
                    agents.join(", ")
                ),
            ),
        }
    }
    (tools, diagnostics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        assert_eq!(namespace("FoodPanda", "http://x"), "foodpanda");
        assert_eq!(namespace("My Shop!", "http://x"), "my_shop");
        assert_eq!(
            namespace("", "http://shop.example:8000/"),
            "shop_example_8000"
        );
    }
}
