//! `/v1/notifications`: the delivery log, and replaying a delivery.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use gateway_core::Gateway;
use gateway_core::store::{NotificationFilter, NotificationRecord};

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::{ApiPath, ApiQuery, Limit, Offset};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    pub agent_id: Option<String>,
    /// `slack` or `webhook`.
    pub channel: Option<String>,
    pub execution_id: Option<String>,
    #[serde(default)]
    #[param(inline)]
    pub limit: Limit<200, 50>,
    #[serde(default)]
    #[param(inline)]
    pub offset: Offset,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    pub items: Vec<NotificationRecord>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[utoipa::path(get, path = "/v1/notifications", tag = "Notifications", summary = "List notification deliveries",
    description = "Newest first; filters combine. A caller sees the deliveries about the executions it may see.",
    params(NotificationQuery),
    responses((status = 200, body = NotificationPage), (status = 503, body = ErrorResponse)))]
pub async fn list_notifications(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<NotificationQuery>,
) -> Result<Json<NotificationPage>, ApiError> {
    let (limit, offset) = (query.limit.get(), query.offset.get());
    let filter = NotificationFilter {
        status: query.status,
        agent_id: query.agent_id,
        channel: query.channel,
        execution_id: query.execution_id,
        owner: None,
        limit,
        offset,
    };
    let (items, total) = gateway.notifications().list(&actor, filter).await?;
    Ok(Json(NotificationPage {
        items,
        total,
        limit,
        offset,
    }))
}

#[utoipa::path(post, path = "/v1/notifications/{notification_id}/retry", tag = "Notifications", summary = "Retry a delivery",
    description = "Sends the original message of a delivery again (with retries); answers when it is delivered or has failed again.",
    params(("notification_id" = i64, Path, description = "Delivery id")),
    responses((status = 200, body = NotificationRecord), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn retry_notification(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(notification_id): ApiPath<i64>,
) -> Result<Json<NotificationRecord>, ApiError> {
    Ok(Json(
        gateway
            .notifications()
            .retry(&actor, notification_id)
            .await?,
    ))
}
