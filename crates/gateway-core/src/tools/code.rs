//! Tools written in Rust and registered on the gateway builder.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Tool, ToolContext, ToolError, ToolSource, clean_schema};

type Handler =
    Arc<dyn Fn(Value, ToolContext) -> BoxFuture<'static, Result<Value, ToolError>> + Send + Sync>;

/// A tool implemented by an async Rust function.
///
/// ```
/// # use gateway_core::tools::{CodeTool, ToolError};
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct AddArgs { a: f64, b: f64 }
///
/// let add = CodeTool::new("add", "Add two numbers", |args: AddArgs, _ctx| async move {
///     Ok::<_, ToolError>(args.a + args.b)
/// })
/// .allowed_agents(["assistant"]);
/// ```
#[derive(Clone)]
pub struct CodeTool {
    name: String,
    description: String,
    parameters: Value,
    allowed_agents: Option<Vec<String>>,
    require_approval: bool,
    handler: Handler,
}

impl CodeTool {
    /// A tool whose arguments are deserialized into `A`; the JSON Schema the model sees is
    /// derived from `A`, and the result is serialized from `R`.
    pub fn new<A, R, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        function: F,
    ) -> Self
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(A, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ToolError>> + Send + 'static,
    {
        let parameters = clean_schema(
            serde_json::to_value(schemars::schema_for!(A))
                .unwrap_or_else(|_| serde_json::json!({})),
        );
        let function = Arc::new(function);
        let handler: Handler = Arc::new(move |arguments: Value, context: ToolContext| {
            let function = Arc::clone(&function);
            Box::pin(async move {
                let args: A = serde_json::from_value(arguments)
                    .map_err(|err| ToolError::failed(format!("invalid arguments: {err}")))?;
                let result = function(args, context).await?;
                serde_json::to_value(result)
                    .map_err(|err| ToolError::failed(format!("result is not JSON: {err}")))
            })
        });
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
            allowed_agents: None,
            require_approval: false,
            handler,
        }
    }

    /// A tool over raw JSON, for schemas only known at runtime.
    pub fn from_json<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
        function: F,
    ) -> Self
    where
        F: Fn(Value, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        let function = Arc::new(function);
        let handler: Handler = Arc::new(move |arguments: Value, context: ToolContext| {
            let function = Arc::clone(&function);
            Box::pin(async move { function(arguments, context).await })
        });
        Self {
            name: name.into(),
            description: description.into(),
            parameters: clean_schema(parameters),
            allowed_agents: None,
            require_approval: false,
            handler,
        }
    }

    /// Restricts the tool to these agents, and gives it to them without listing it in AGENT.md.
    pub fn allowed_agents<I, S>(mut self, agents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_agents = Some(agents.into_iter().map(Into::into).collect());
        self
    }

    /// Each call waits for a human approval.
    pub fn require_approval(mut self) -> Self {
        self.require_approval = true;
        self
    }
}

#[async_trait]
impl Tool for CodeTool {
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
        ToolSource::Code
    }

    fn allows_agent(&self, agent_id: &str) -> bool {
        self.allowed_agents
            .as_ref()
            .is_none_or(|agents| agents.iter().any(|a| a == agent_id))
    }

    fn granted_to(&self) -> &[String] {
        self.allowed_agents.as_deref().unwrap_or(&[])
    }

    fn requires_approval(&self) -> bool {
        self.require_approval
    }

    async fn call(&self, arguments: Value, context: &ToolContext) -> Result<Value, ToolError> {
        (self.handler)(arguments, context.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, JsonSchema)]
    struct AddArgs {
        /// First number
        a: f64,
        b: f64,
    }

    #[tokio::test]
    async fn derives_schema_and_calls() {
        let tool = CodeTool::new("add", "Add", |args: AddArgs, _| async move {
            Ok::<_, ToolError>(args.a + args.b)
        })
        .allowed_agents(["assistant"]);
        let schema = tool.parameters();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["a"]["type"], "number");
        assert_eq!(schema["properties"]["a"]["description"], "First number");
        assert!(schema.get("$schema").is_none());
        assert!(tool.allows_agent("assistant"));
        assert!(!tool.allows_agent("other"));
        let out = tool
            .call(json!({"a": 1, "b": 2.5}), &ToolContext::default())
            .await
            .unwrap();
        assert_eq!(out, json!(3.5));
        let err = tool
            .call(json!({"a": "x"}), &ToolContext::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid arguments"));
    }
}
