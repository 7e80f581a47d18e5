//! Handlers: typed async functions, erased to one JSON-in/JSON-out shape.

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::auth::Caller;

/// What a handler knows about its call.
#[derive(Clone, Default)]
pub struct Context {
    /// `X-Agent-ID` of the caller, if it sent one.
    pub agent_id: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The session of a server-flow step.
    pub session_id: Option<String>,
    data: Arc<Mutex<Map<String, Value>>>,
    /// Who the site's auth found the caller to be.
    caller: Option<Caller>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("agent_id", &self.agent_id)
            .field("session_id", &self.session_id)
            .field("identified", &self.caller.is_some())
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(
        agent_id: Option<String>,
        headers: HeaderMap,
        session_id: Option<String>,
        data: Map<String, Value>,
        caller: Option<Caller>,
    ) -> Self {
        Self {
            agent_id,
            headers,
            session_id,
            data: Arc::new(Mutex::new(data)),
            caller,
        }
    }

    /// Who calls, as the site's [`super::Auth::bearer_identified`] check told (`None`: the
    /// auth does not identify callers, or `T` is not the type it gave).
    pub fn caller<T: 'static>(&self) -> Option<&T> {
        self.caller.as_ref()?.downcast_ref::<T>()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map<String, Value>> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A value stored in the session by an earlier step.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.lock()
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Stores a value in the session (kept only if the step succeeds).
    pub fn set<T: Serialize>(&self, key: &str, value: T) {
        if let Ok(value) = serde_json::to_value(value) {
            self.lock().insert(key.to_string(), value);
        }
    }

    pub fn remove(&self, key: &str) -> Option<Value> {
        self.lock().remove(key)
    }

    /// All session data.
    pub fn data(&self) -> Map<String, Value> {
        self.lock().clone()
    }
}

/// Why a handler failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// The input is well-formed but not acceptable (an unknown id, say): 422 `invalid_input`
    /// with this message.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The caller is known but may not do this (another user's session, a scope it lacks):
    /// 403 `forbidden` with this message.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Anything else: logged, answered 500 `handler_failed` without the detail.
    #[error("{0}")]
    Failed(String),
}

impl HandlerError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }
}

impl From<String> for HandlerError {
    fn from(message: String) -> Self {
        Self::Failed(message)
    }
}

impl From<&str> for HandlerError {
    fn from(message: &str) -> Self {
        Self::Failed(message.to_string())
    }
}

/// A handler over JSON values.
pub type DynHandler =
    Arc<dyn Fn(Context, Value) -> BoxFuture<'static, Result<Value, HandlerError>> + Send + Sync>;

/// A handler with its schemas.
#[derive(Clone)]
pub(crate) struct Callable {
    pub input_schema: Value,
    pub output_schema: Value,
    pub handler: DynHandler,
}

/// Wraps a typed function: arguments deserialized from the JSON object (after schema
/// validation), result serialized back.
pub(crate) fn typed<I, O, F, Fut>(function: F) -> Callable
where
    I: DeserializeOwned + JsonSchema + Send + 'static,
    O: Serialize + JsonSchema + Send + 'static,
    F: Fn(Context, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
{
    let function = Arc::new(function);
    let handler: DynHandler = Arc::new(move |context, input| {
        let function = Arc::clone(&function);
        Box::pin(async move {
            let input: I = serde_json::from_value(input)
                .map_err(|err| HandlerError::InvalidInput(err.to_string()))?;
            let output = function(context, input).await?;
            serde_json::to_value(output)
                .map_err(|err| HandlerError::Failed(format!("result is not JSON: {err}")))
        })
    });
    Callable {
        input_schema: crate::schema::input_schema::<I>(),
        output_schema: crate::schema::output_schema::<O>(),
        handler,
    }
}

/// Wraps a JSON function with schemas given at runtime.
pub(crate) fn dynamic<F, Fut>(input_schema: Value, output_schema: Value, function: F) -> Callable
where
    F: Fn(Context, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    let function = Arc::new(function);
    let handler: DynHandler = Arc::new(move |context, input| {
        let function = Arc::clone(&function);
        Box::pin(async move { function(context, input).await })
    });
    Callable {
        input_schema,
        output_schema,
        handler,
    }
}
