//! `/v1/agents/{agent_id}/memories` and `/v1/agents/{agent_id}/memory/compact`: an agent's
//! memories — a user's own, or the agent's shared knowledge — listed, read, written and
//! compacted. Who may see or change which memory is the core's rule (`gateway.memories()`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use gateway_core::store::{MemoryRecord, MemorySource, MemoryType};
use gateway_core::{CompactReport, Gateway, MemoryCreate, MemoryEdit, MemoryOwner, MemoryQuery};

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorDetail, ErrorResponse, LocItem, RequestError};
use crate::kit::extract::{
    ApiJson, ApiPath, ApiQuery, Limit, Offset, not_blank_schema, optional_not_blank_schema,
};

/// The importance a memory gets when the request names none.
const DEFAULT_IMPORTANCE: f64 = 0.5;

/// The importances a request may give (the core would clamp others silently).
const IMPORTANCE: std::ops::RangeInclusive<f64> = 0.0..=1.0;

/// `importance` as the document declares it (the bounds [`check_importance`] enforces).
fn importance_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
        .minimum(Some(*IMPORTANCE.start()))
        .maximum(Some(*IMPORTANCE.end()))
        .into()
}

/// A request value that breaks the route's contract, at `loc`.
fn invalid(loc: &[&str], message: impl Into<String>, msg: &str) -> ApiError {
    RequestError::invalid(
        message,
        ErrorDetail {
            loc: loc.iter().map(|item| LocItem::from(*item)).collect(),
            msg: msg.to_string(),
            kind: "value_error".into(),
        },
    )
    .into()
}

/// Rejects an importance outside 0..1 (the core would clamp it silently).
fn check_importance(importance: Option<f64>) -> Result<(), ApiError> {
    match importance {
        Some(value) if !IMPORTANCE.contains(&value) => Err(invalid(
            &["body", "importance"],
            format!("importance must be between 0 and 1 (got {value})"),
            "between 0 and 1",
        )),
        _ => Ok(()),
    }
}

/// Rejects an empty user id (`loc`: where it was given).
fn check_user(loc: &[&str], user: &str) -> Result<(), ApiError> {
    if user.trim().is_empty() {
        return Err(invalid(loc, "a user id cannot be empty", "not empty"));
    }
    Ok(())
}

/// Whose memories a listing is about, besides a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemoryScopeParam {
    /// The agent's shared knowledge.
    Shared,
    /// Every scope: the shared knowledge and every user's memories (admins only).
    All,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemoryListQuery {
    /// This user's memories (admins, or the caller's own id). Without it (and without
    /// `scope`): the caller's own memories.
    #[param(schema_with = not_blank_schema)]
    pub user: Option<String>,
    /// `shared`: the agent's shared knowledge (readable by every user); `all`: every scope
    /// (admins only).
    #[param(inline)]
    pub scope: Option<MemoryScopeParam>,
    /// `semantic`, `episodic` or `procedural`.
    #[serde(rename = "type")]
    pub memory_type: Option<MemoryType>,
    /// `manual`, `extracted`, `compacted` or `api`.
    pub source: Option<MemorySource>,
    /// Text the content contains (ignoring case).
    pub q: Option<String>,
    #[serde(default)]
    #[param(inline)]
    pub limit: Limit<200, 50>,
    #[serde(default)]
    #[param(inline)]
    pub offset: Offset,
}

/// One page of memories, newest change first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemoryPage {
    pub memories: Vec<MemoryRecord>,
    /// How many memories match, over all pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[utoipa::path(get, path = "/v1/agents/{agent_id}/memories", tag = "Memory", summary = "List memories",
    description = "The caller's own memories of the agent, one user's (`user`: admins, or the caller), or the agent's shared knowledge (`scope=shared`). Filters combine; newest change first. With auth off (no caller identity) every scope is listed.",
    params(("agent_id" = String, Path, description = "Agent id"), MemoryListQuery),
    responses((status = 200, body = MemoryPage), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn list_memories(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MemoryListQuery>,
) -> Result<Json<MemoryPage>, ApiError> {
    let (limit, offset) = (query.limit.get(), query.offset.get());
    let owner = match (query.user, query.scope) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                &["query", "scope"],
                "give either user or scope, not both",
                "not with user",
            ));
        }
        (Some(user), None) => {
            check_user(&["query", "user"], &user)?;
            MemoryOwner::User(user)
        }
        (None, Some(MemoryScopeParam::Shared)) => MemoryOwner::Shared,
        (None, Some(MemoryScopeParam::All)) => MemoryOwner::All,
        (None, None) => MemoryOwner::Caller,
    };
    let memory_query = MemoryQuery {
        owner,
        memory_type: query.memory_type,
        source: query.source,
        search: query.q,
        limit,
        offset,
    };
    let (memories, total) = gateway
        .memories()
        .list(&actor, &agent_id, &memory_query)
        .await?;
    Ok(Json(MemoryPage {
        memories,
        total,
        limit,
        offset,
    }))
}

#[utoipa::path(get, path = "/v1/agents/{agent_id}/memories/{memory_id}", tag = "Memory", summary = "Get memory",
    description = "One memory: the caller's own, the agent's shared knowledge, or (admins) anyone's. Another user's is 403.",
    params(("agent_id" = String, Path, description = "Agent id"), ("memory_id" = String, Path, description = "Memory id")),
    responses((status = 200, body = MemoryRecord), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn get_memory(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath((agent_id, memory_id)): ApiPath<(String, String)>,
) -> Result<Json<MemoryRecord>, ApiError> {
    Ok(Json(
        gateway
            .memories()
            .get(&actor, &agent_id, &memory_id)
            .await?,
    ))
}

/// A memory to save.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryCreateBody {
    /// What to remember (not blank; at most the agent's `max_content_chars`).
    #[schema(schema_with = not_blank_schema)]
    pub content: String,
    /// Default `semantic`.
    pub memory_type: Option<MemoryType>,
    /// 0 to 1, default 0.5.
    #[schema(schema_with = importance_schema)]
    pub importance: Option<f64>,
    /// Always injected first and never compacted. Default false.
    pub pinned: Option<bool>,
    /// Save into this user's memories (admins, or the caller's own id).
    #[schema(schema_with = optional_not_blank_schema)]
    pub user_id: Option<String>,
    /// Save into the agent's shared knowledge (admins).
    pub shared: Option<bool>,
}

#[utoipa::path(post, path = "/v1/agents/{agent_id}/memories", tag = "Memory", summary = "Create memory",
    description = "Saves a memory (source `api`) in the caller's own scope, in `user_id`'s (admins), or in the agent's shared knowledge (`shared: true`, admins). The same content already in the scope is updated rather than stored twice; a full scope is 409.",
    params(("agent_id" = String, Path, description = "Agent id")),
    request_body = MemoryCreateBody,
    responses((status = 201, body = MemoryRecord), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn create_memory(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(body): ApiJson<MemoryCreateBody>,
) -> Result<Response, ApiError> {
    check_importance(body.importance)?;
    let owner = match (body.user_id, body.shared.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(invalid(
                &["body", "shared"],
                "give either user_id or shared: true, not both",
                "not with user_id",
            ));
        }
        (Some(user), false) => {
            check_user(&["body", "user_id"], &user)?;
            MemoryOwner::User(user)
        }
        (None, true) => MemoryOwner::Shared,
        (None, false) => MemoryOwner::Caller,
    };
    let create = MemoryCreate {
        owner,
        content: body.content,
        memory_type: body.memory_type.unwrap_or_default(),
        importance: body.importance.unwrap_or(DEFAULT_IMPORTANCE),
        pinned: body.pinned.unwrap_or(false),
    };
    let memory = gateway.memories().create(&actor, &agent_id, create).await?;
    Ok((StatusCode::CREATED, Json(memory)).into_response())
}

/// Changes to a memory; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryEditBody {
    #[schema(schema_with = optional_not_blank_schema)]
    pub content: Option<String>,
    pub memory_type: Option<MemoryType>,
    /// 0 to 1.
    #[schema(schema_with = importance_schema)]
    pub importance: Option<f64>,
    pub pinned: Option<bool>,
}

#[utoipa::path(patch, path = "/v1/agents/{agent_id}/memories/{memory_id}", tag = "Memory", summary = "Edit memory",
    description = "Changes a memory's content, type, importance or pinning: the caller's own, or (admins) anyone's and the shared knowledge's.",
    params(("agent_id" = String, Path, description = "Agent id"), ("memory_id" = String, Path, description = "Memory id")),
    request_body = MemoryEditBody,
    responses((status = 200, body = MemoryRecord), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn edit_memory(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath((agent_id, memory_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<MemoryEditBody>,
) -> Result<Json<MemoryRecord>, ApiError> {
    check_importance(body.importance)?;
    let edit = MemoryEdit {
        content: body.content,
        memory_type: body.memory_type,
        importance: body.importance,
        pinned: body.pinned,
    };
    Ok(Json(
        gateway
            .memories()
            .update(&actor, &agent_id, &memory_id, edit)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/agents/{agent_id}/memories/{memory_id}", tag = "Memory", summary = "Delete memory",
    description = "Forgets a memory: the caller's own, or (admins) anyone's and the shared knowledge's.",
    params(("agent_id" = String, Path, description = "Agent id"), ("memory_id" = String, Path, description = "Memory id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn delete_memory(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath((agent_id, memory_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    gateway
        .memories()
        .delete(&actor, &agent_id, &memory_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/agents/{agent_id}/memory/compact", tag = "Memory", summary = "Compact memory",
    description = "Compacts the agent's shared knowledge and the caller's own memories where they hold more than `memory.compaction.max_memories_per_scope`: the lowest-scored unprotected memories are summarised by a model and the summaries replace them in one step. When the model call fails or its answer does not parse, nothing is deleted and the answer is an error.",
    params(("agent_id" = String, Path, description = "Agent id")),
    responses((status = 200, body = CompactReport), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 502, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn compact_memory(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(agent_id): ApiPath<String>,
) -> Result<Json<CompactReport>, ApiError> {
    Ok(Json(gateway.memories().compact(&actor, &agent_id).await?))
}
