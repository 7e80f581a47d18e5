//! Introspection: health, agents, skills, tools.

use axum::Json;
use axum::extract::State;
use gateway_core::tools::ToolInfo;
use gateway_core::workspace::agent::NotificationTarget;
use gateway_core::workspace::{
    AgentDefinition, AgentScope, ExecutionMode, SkillDefinition, StepAction,
};
use gateway_core::{Gateway, GatewayError, Generation, Health, Readiness, Record};
use serde::Serialize;
use serde_json::Value;

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::ApiPath;

#[utoipa::path(get, path = "/v1/health", tag = "Health", summary = "Health check",
    description = "Liveness and a summary of the loaded workspace; `degraded` when the workspace has errors.",
    responses((status = 200, body = Health)))]
pub async fn health(State(gateway): State<Gateway>) -> Json<Health> {
    Json(gateway.health())
}

#[utoipa::path(get, path = "/v1/ready", tag = "Health", summary = "Readiness check",
    description = "Whether this instance can serve: the store answers a trivial query, and the queue broker and the scheduler's Redis lock answer a ping when configured (each gives up after about two seconds). 503 `not_ready` lists the failed checks in `details` (`loc`: `[\"checks\", <name>]`). With auth on, a caller without a valid credential gets each check's name and outcome only, not its error.",
    responses((status = 200, body = Readiness), (status = 503, body = ErrorResponse)))]
pub async fn ready(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
) -> Result<Json<Readiness>, ApiError> {
    Ok(Json(gateway.ready(&actor).await?))
}

/// A notification target as listed (channel and target only).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TargetInfo {
    pub channel: String,
    pub target: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationsInfo {
    pub on_complete: Vec<TargetInfo>,
    pub on_error: Vec<TargetInfo>,
    pub on_timeout: Vec<TargetInfo>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentInfo {
    pub id: String,
    pub description: String,
    pub display_name: Option<String>,
    pub tags: Vec<String>,
    pub version: Option<String>,
    pub skills: Vec<String>,
    /// Tools the agent can call.
    pub tools: Vec<String>,
    /// The model named in AGENT.md (null: the gateway default).
    pub model: Option<String>,
    /// Schedule names.
    pub schedules: Vec<String>,
    pub execution_mode: String,
    pub notifications: Option<NotificationsInfo>,
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    pub retrievers: Vec<String>,
    pub context_file_count: usize,
    pub memory_enabled: bool,
    pub enabled: bool,
    pub scope: String,
    pub delegates_to: Vec<String>,
}

fn agent_info(agent: &AgentDefinition, generation: &Generation) -> AgentInfo {
    let tools = generation.agent_tool_names(agent);
    let targets = |list: &[NotificationTarget]| {
        list.iter()
            .map(|t| TargetInfo {
                channel: t.channel.clone(),
                target: t.url.clone().unwrap_or_else(|| t.target.clone()),
            })
            .collect()
    };
    let n = &agent.notifications;
    AgentInfo {
        id: agent.id.clone(),
        description: agent.display_description(),
        display_name: agent.display_name.clone(),
        tags: agent.tags.clone(),
        version: agent.version.clone(),
        skills: agent.skills.clone(),
        tools,
        model: agent.model.name.clone(),
        schedules: agent.schedules.iter().map(|s| s.name.clone()).collect(),
        execution_mode: match agent.execution_mode {
            ExecutionMode::Sync => "sync",
            ExecutionMode::Async => "async",
        }
        .to_string(),
        notifications: (!n.is_empty()).then(|| NotificationsInfo {
            on_complete: targets(&n.on_complete),
            on_error: targets(&n.on_error),
            on_timeout: targets(&n.on_timeout),
        }),
        input_schema: agent.input_schema.clone(),
        output_schema: agent.output_schema.clone(),
        retrievers: agent.retrievers.clone(),
        context_file_count: agent.context_files.len(),
        memory_enabled: generation
            .memory_settings(&agent.id)
            .is_some_and(|s| s.enabled),
        enabled: agent.enabled,
        scope: match agent.scope {
            AgentScope::Global => "global",
            AgentScope::Personal => "personal",
        }
        .to_string(),
        delegates_to: agent.delegates_to.clone(),
    }
}

#[utoipa::path(get, path = "/v1/agents", tag = "Agents", summary = "List agents",
    responses((status = 200, body = [AgentInfo])))]
pub async fn list_agents(State(gateway): State<Gateway>) -> Json<Vec<AgentInfo>> {
    let generation = gateway.generation();
    Json(
        generation
            .agents()
            .map(|a| agent_info(a, &generation))
            .collect(),
    )
}

#[utoipa::path(get, path = "/v1/agents/{agent_id}", tag = "Agents", summary = "Agent details",
    params(("agent_id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentInfo), (status = 404, body = ErrorResponse)))]
pub async fn get_agent(
    State(gateway): State<Gateway>,
    ApiPath(agent_id): ApiPath<String>,
) -> Result<Json<AgentInfo>, ApiError> {
    let generation = gateway.generation();
    let agent = generation
        .agent(&agent_id)
        .ok_or_else(|| GatewayError::not_found(Record::Agent, &agent_id))?;
    Ok(Json(agent_info(agent, &generation)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SetupSchemaInfo {
    pub agent_id: String,
    pub scope: String,
    #[schema(value_type = Option<Object>)]
    pub setup_schema: Option<Value>,
}

#[utoipa::path(get, path = "/v1/agents/{agent_id}/setup-schema", tag = "User Config", summary = "Get agent setup schema",
    params(("agent_id" = String, Path, description = "Agent id")),
    responses((status = 200, body = SetupSchemaInfo), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn setup_schema(
    State(gateway): State<Gateway>,
    ApiPath(agent_id): ApiPath<String>,
) -> Result<Json<SetupSchemaInfo>, ApiError> {
    let generation = gateway.generation();
    let agent = generation
        .agent(&agent_id)
        .ok_or_else(|| GatewayError::not_found(Record::Agent, &agent_id))?;
    if agent.scope != AgentScope::Personal {
        return Err(GatewayError::NotPersonalAgent(agent_id).into());
    }
    Ok(Json(SetupSchemaInfo {
        agent_id,
        scope: "personal".into(),
        setup_schema: agent.setup_schema.clone(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepInfo {
    pub name: String,
    /// `tool`, `parallel` or `prompt`.
    #[serde(rename = "type")]
    pub kind: String,
    pub tools: Vec<String>,
    #[schema(value_type = Object)]
    pub input: Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SkillInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tools: Vec<String>,
    pub has_workflow: bool,
    pub step_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepInfo>>,
}

fn skill_info(skill: &SkillDefinition, with_steps: bool) -> SkillInfo {
    SkillInfo {
        id: skill.id.clone(),
        name: skill.name.clone(),
        description: skill.description.clone(),
        tools: skill.tools.clone(),
        has_workflow: skill.has_workflow(),
        step_count: skill.steps.len(),
        steps: with_steps.then(|| {
            skill
                .steps
                .iter()
                .map(|step| StepInfo {
                    name: step.name.clone(),
                    kind: match step.action {
                        StepAction::Tool { .. } => "tool",
                        StepAction::Parallel { .. } => "parallel",
                        StepAction::Prompt { .. } => "prompt",
                    }
                    .into(),
                    tools: step.action.tools().into_iter().map(String::from).collect(),
                    input: Value::Object(step.input.clone()),
                })
                .collect()
        }),
    }
}

#[utoipa::path(get, path = "/v1/skills", tag = "Skills", summary = "List skills",
    responses((status = 200, body = [SkillInfo])))]
pub async fn list_skills(State(gateway): State<Gateway>) -> Json<Vec<SkillInfo>> {
    Json(
        gateway
            .generation()
            .skills()
            .map(|s| skill_info(s, false))
            .collect(),
    )
}

#[utoipa::path(get, path = "/v1/skills/{skill_id}", tag = "Skills", summary = "Skill details",
    params(("skill_id" = String, Path, description = "Skill id")),
    responses((status = 200, body = SkillInfo), (status = 404, body = ErrorResponse)))]
pub async fn get_skill(
    State(gateway): State<Gateway>,
    ApiPath(skill_id): ApiPath<String>,
) -> Result<Json<SkillInfo>, ApiError> {
    let generation = gateway.generation();
    let skill = generation
        .skill(&skill_id)
        .ok_or_else(|| GatewayError::not_found(Record::Skill, &skill_id))?;
    Ok(Json(skill_info(skill, true)))
}

#[utoipa::path(get, path = "/v1/tools", tag = "Tools", summary = "List tools",
    responses((status = 200, body = [ToolInfo])))]
pub async fn list_tools(State(gateway): State<Gateway>) -> Json<Vec<ToolInfo>> {
    Json(gateway.generation().tool_infos())
}

#[utoipa::path(get, path = "/v1/tools/{tool_name}", tag = "Tools", summary = "Tool details",
    params(("tool_name" = String, Path, description = "Tool name")),
    responses((status = 200, body = ToolInfo), (status = 404, body = ErrorResponse)))]
pub async fn get_tool(
    State(gateway): State<Gateway>,
    ApiPath(tool_name): ApiPath<String>,
) -> Result<Json<ToolInfo>, ApiError> {
    let tool = gateway
        .generation()
        .tool_infos()
        .into_iter()
        .find(|t| t.name == tool_name)
        .ok_or_else(|| GatewayError::not_found(Record::Tool, &tool_name))?;
    Ok(Json(tool))
}
