//! `scripted/<name>`: a model answered in-process by a [`model_script::Player`], by the same
//! rules `mock-llm` answers over HTTP. No network, no key: the model of a first run and of
//! workspace tests.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use model_script::{LastMessage, OfferedTool, Player, Reply};

use crate::{
    Completion, CompletionRequest, CompletionStream, FinishReason, LlmError, ModelProvider, Role,
    StreamEvent, TokenUsage, ToolCall,
};

/// The provider name scripted models go by.
pub const PROVIDER: &str = "scripted";

/// One scripted model: every request takes its reply from the shared player.
pub struct Scripted {
    player: Arc<Player>,
}

impl Scripted {
    pub fn new(player: Arc<Player>) -> Self {
        Self { player }
    }

    /// The reply for `request` after its delay, or the failure it scripts.
    async fn reply(&self, model: &str, request: &CompletionRequest) -> Result<Reply, LlmError> {
        let reply = self.player.answer(&script_request(model, request));
        if reply.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
        }
        if let Some(status) = reply.status {
            return Err(LlmError::Http {
                provider: PROVIDER.to_string(),
                status,
                body: reply
                    .body
                    .clone()
                    .unwrap_or_else(|| format!("scripted failure {status}")),
                retry_after: None,
            });
        }
        if let Some(raw) = &reply.raw_body {
            return Err(LlmError::InvalidResponse {
                provider: PROVIDER.to_string(),
                message: format!("scripted malformed answer: {raw}"),
            });
        }
        if reply.cut_after.is_some() {
            // In process there is no connection to drop: the same error a dropped one gives.
            return Err(LlmError::Connection {
                provider: PROVIDER.to_string(),
                message: "scripted: the answer was cut off".to_string(),
            });
        }
        Ok(reply)
    }
}

/// What the script sees of a request.
fn script_request(model: &str, request: &CompletionRequest) -> model_script::Request {
    let last = match request.messages.last() {
        Some(message) if message.role == Role::User => LastMessage::User(message.content.clone()),
        Some(message) if message.role == Role::Tool => LastMessage::ToolResult {
            tool: message.name.clone().unwrap_or_default(),
            content: message.content.clone(),
        },
        _ => LastMessage::Other,
    };
    model_script::Request {
        model: model.to_string(),
        last_user: request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default(),
        last,
        tools: request
            .tools
            .iter()
            .map(|tool| OfferedTool {
                name: tool.name.clone(),
                parameters: tool.parameters.clone(),
            })
            .collect(),
        output_schema: request.output_schema.clone(),
    }
}

/// The completion a reply stands for, with its scripted or estimated usage.
fn completion(reply: &Reply, request: &CompletionRequest) -> Completion {
    let text = reply.text.clone().unwrap_or_default();
    let tool_calls: Vec<ToolCall> = reply
        .tool_calls
        .iter()
        .map(|call| ToolCall {
            id: call.id.clone().unwrap_or_default(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        })
        .collect();
    let usage = match reply.usage {
        Some(usage) => TokenUsage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
        },
        None => TokenUsage {
            input_tokens: request
                .messages
                .iter()
                .map(|m| model_script::estimate_tokens(&m.content))
                .sum(),
            output_tokens: model_script::estimate_tokens(&text) + tool_calls.len() as u64 * 8,
        },
    };
    Completion {
        text,
        finish_reason: if tool_calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        },
        tool_calls,
        usage,
        model: String::new(),
    }
}

#[async_trait]
impl ModelProvider for Scripted {
    async fn embed(&self, _model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        Ok(texts.iter().map(|t| model_script::embedding(t)).collect())
    }

    async fn complete(
        &self,
        model: &str,
        request: &CompletionRequest,
    ) -> Result<Completion, LlmError> {
        let reply = self.reply(model, request).await?;
        Ok(completion(&reply, request))
    }

    async fn stream(
        &self,
        model: &str,
        request: &CompletionRequest,
    ) -> Result<CompletionStream, LlmError> {
        let reply = self.reply(model, request).await?;
        let whole = completion(&reply, request);
        let mut events: Vec<StreamEvent> = model_script::pieces(&whole.text)
            .into_iter()
            .map(StreamEvent::Text)
            .collect();
        events.extend(whole.tool_calls.iter().cloned().map(StreamEvent::ToolCall));
        events.push(StreamEvent::Finished(whole));
        let pause = Duration::from_millis(reply.chunk_delay_ms);
        let stream = futures::stream::iter(events.into_iter().enumerate()).then(
            move |(index, event)| async move {
                if index > 0 && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                Ok(event)
            },
        );
        Ok(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, ToolSpec};
    use model_script::Script;
    use serde_json::json;

    fn request(messages: Vec<Message>) -> CompletionRequest {
        CompletionRequest {
            messages,
            tools: vec![ToolSpec {
                name: "current-time".into(),
                description: "now".into(),
                parameters: json!({"type": "object", "properties": {}}),
            }],
            ..CompletionRequest::default()
        }
    }

    #[tokio::test]
    async fn the_echo_calls_a_named_tool_then_reports_its_result() {
        let model = Scripted::new(Arc::new(Player::new(Script::default())));
        let ask = vec![
            Message::system("be brief"),
            Message::user("What is the current time?"),
        ];
        let first = model.complete("demo", &request(ask.clone())).await.unwrap();
        assert_eq!(first.finish_reason, FinishReason::ToolCalls);
        let call = first.tool_calls[0].clone();
        assert_eq!(call.name, "current-time");
        let mut after = ask;
        after.push(Message::assistant_with_tool_calls("", vec![call.clone()]));
        after.push(Message::tool_result(&call.id, "current-time", "12:00"));
        let second = model.complete("demo", &request(after)).await.unwrap();
        assert_eq!(second.text, "current-time returned: 12:00");
        assert_eq!(second.finish_reason, FinishReason::Stop);
    }

    #[tokio::test]
    async fn streams_pieces_then_the_whole_and_fails_as_scripted() {
        let player = Player::new(Script {
            replies: vec![Reply::text("one two three"), Reply::error(503, None)],
            default: None,
        });
        let model = Scripted::new(Arc::new(player));
        let events: Vec<StreamEvent> = model
            .stream("demo", &request(vec![Message::user("hi")]))
            .await
            .unwrap()
            .map(|e| e.unwrap())
            .collect()
            .await;
        assert_eq!(events.len(), 4);
        assert_eq!(events[0], StreamEvent::Text("one ".into()));
        let StreamEvent::Finished(whole) = &events[3] else {
            panic!("no Finished event");
        };
        assert_eq!(whole.text, "one two three");
        let err = model
            .complete("demo", &request(vec![Message::user("hi")]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LlmError::Http { status: 503, .. }) && err.is_retryable(),
            "{err:?}"
        );
    }
}
