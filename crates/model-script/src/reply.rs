//! One scripted reply: what it answers (text, structured output, tool calls, a failure, a
//! delay) and which requests it answers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Restricts which requests a reply answers. Every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Exact model name of the request (without provider prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Text the last user message contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
}

/// A tool call the reply asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptedCall {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
    /// Call id; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Token counts to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// One scripted answer: the format of script files, of `mock-llm`'s control API and of the
/// gateway's `scripted/<name>` models.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Match>,
    /// Assistant text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Structured output: answered as its JSON text (when `text` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ScriptedCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ScriptedUsage>,
    /// Wait this long before answering.
    #[serde(default)]
    pub delay_ms: u64,
    /// Wait this long between stream chunks.
    #[serde(default)]
    pub chunk_delay_ms: u64,
    /// Fail with this HTTP status instead of answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Body of the failure; a provider-shaped error JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Answer 200 with exactly this (malformed) body; in-process, a malformed answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    /// Over HTTP: cut the answer after this many stream frames (or bytes of a whole JSON
    /// answer) and drop the connection, as a proxy or a crashed server would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_after: Option<u32>,
    /// How many requests this reply answers before it is used up (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl Reply {
    /// A text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// An answer asking for one tool call.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Self::tool_calls(vec![(name, arguments)])
    }

    /// An answer asking for several tool calls at once.
    pub fn tool_calls<N: Into<String>>(calls: Vec<(N, Value)>) -> Self {
        Self {
            tool_calls: calls
                .into_iter()
                .map(|(name, arguments)| ScriptedCall {
                    name: name.into(),
                    arguments,
                    id: None,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// An HTTP error answer (`body` None: the provider's usual error JSON).
    pub fn error(status: u16, body: Option<&str>) -> Self {
        Self {
            status: Some(status),
            body: body.map(String::from),
            ..Self::default()
        }
    }

    /// A 200 answer with a body that is not what the provider would send.
    pub fn malformed(body: impl Into<String>) -> Self {
        Self {
            raw_body: Some(body.into()),
            ..Self::default()
        }
    }

    /// The answer cut after `n` stream frames (or bytes of a whole answer), the connection
    /// dropped: `cut_after(0)` drops it as soon as the response head is sent.
    pub fn cut_after(mut self, n: u32) -> Self {
        self.cut_after = Some(n);
        self
    }

    /// Answer only requests for this model.
    pub fn for_model(mut self, model: impl Into<String>) -> Self {
        self.matcher.get_or_insert_with(Match::default).model = Some(model.into());
        self
    }

    /// Answer only requests whose last user message contains `text`.
    pub fn when_contains(mut self, text: impl Into<String>) -> Self {
        self.matcher.get_or_insert_with(Match::default).contains = Some(text.into());
        self
    }

    pub fn with_delay(mut self, ms: u64) -> Self {
        self.delay_ms = ms;
        self
    }

    pub fn with_chunk_delay(mut self, ms: u64) -> Self {
        self.chunk_delay_ms = ms;
        self
    }

    pub fn with_usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some(ScriptedUsage {
            input_tokens,
            output_tokens,
        });
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Answer `n` requests with this reply.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// A structured answer (sent as its JSON text).
    pub fn output(value: Value) -> Self {
        Self {
            output: Some(value),
            ..Self::default()
        }
    }

    /// Whether the reply says what to answer (a default reply that does not is the echo).
    pub fn answers_something(&self) -> bool {
        self.text.is_some()
            || self.output.is_some()
            || !self.tool_calls.is_empty()
            || self.status.is_some()
            || self.raw_body.is_some()
    }

    /// The answer's text: `text`, else the JSON text of `output`, else empty.
    pub fn answer_text(&self) -> String {
        match (&self.text, &self.output) {
            (Some(text), _) => text.clone(),
            (None, Some(output)) => output.to_string(),
            (None, None) => String::new(),
        }
    }

    pub(crate) fn matches(&self, model: &str, last_user: &str) -> bool {
        let Some(matcher) = &self.matcher else {
            return true;
        };
        matcher.model.as_deref().is_none_or(|m| m == model)
            && matcher
                .contains
                .as_deref()
                .is_none_or(|c| last_user.contains(c))
    }
}
