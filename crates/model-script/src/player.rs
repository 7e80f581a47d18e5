//! [`Script`] (what a scripted model answers) and [`Player`] (a script being played: the
//! replies left, the default, the call ids handed out).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Reply, Request, echo};

/// Replies used up in order, and the reply for requests none of them fits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Script {
    pub replies: Vec<Reply>,
    /// Answers when no reply fits; the echo when absent (or when it says nothing to answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Reply>,
}

impl Script {
    /// A script file's JSON: a list of replies, `{replies: [...], default: {...}}`, or one
    /// reply.
    pub fn from_json(value: Value) -> Result<Self, serde_json::Error> {
        match value {
            Value::Array(_) => Ok(Self {
                replies: serde_json::from_value(value)?,
                default: None,
            }),
            Value::Object(ref fields) if fields.contains_key("replies") => {
                serde_json::from_value(value)
            }
            other => Ok(Self {
                replies: vec![serde_json::from_value(other)?],
                default: None,
            }),
        }
    }
}

/// A script being played. Shared by every request to one scripted model.
#[derive(Debug, Default)]
pub struct Player {
    replies: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    calls: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Player {
    pub fn new(script: Script) -> Self {
        Self {
            replies: Mutex::new(script.replies.into()),
            default: Mutex::new(script.default),
            calls: AtomicU64::new(0),
        }
    }

    /// Queues a reply after the others.
    pub fn push(&self, reply: Reply) {
        lock(&self.replies).push_back(reply);
    }

    /// Drops every reply still queued.
    pub fn clear(&self) {
        lock(&self.replies).clear();
    }

    /// Replies still queued.
    pub fn pending(&self) -> usize {
        lock(&self.replies).len()
    }

    /// Sets the reply for requests no queued reply fits (`None`: the echo).
    pub fn set_default(&self, reply: Option<Reply>) {
        *lock(&self.default) = reply;
    }

    /// The reply that answers `request`, used up as the script says, with its text resolved
    /// (structured output as JSON text) and an id for each tool call.
    pub fn answer(&self, request: &Request) -> Reply {
        let mut reply = self.take(request);
        if reply.text.is_none() {
            reply.text = Some(reply.answer_text());
        }
        for call in &mut reply.tool_calls {
            if call.id.is_none() {
                let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
                call.id = Some(format!("call_{n}"));
            }
            if call.arguments.is_null() {
                call.arguments = json!({});
            }
        }
        reply
    }

    fn take(&self, request: &Request) -> Reply {
        {
            let mut queue = lock(&self.replies);
            if let Some(index) = queue
                .iter()
                .position(|r| r.matches(&request.model, &request.last_user))
            {
                let remaining = queue[index].times.unwrap_or(1);
                return if remaining > 1 {
                    queue[index].times = Some(remaining - 1);
                    queue[index].clone()
                } else {
                    queue.remove(index).unwrap_or_default()
                };
            }
        }
        let default = lock(&self.default).clone().unwrap_or_default();
        if default.answers_something() {
            return default;
        }
        // A default that only sets a delay or usage still echoes, with those.
        let echoed = echo(request);
        Reply {
            text: echoed.text,
            output: echoed.output,
            tool_calls: echoed.tool_calls,
            ..default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LastMessage, OfferedTool};

    fn ask(text: &str) -> Request {
        Request {
            model: "m".into(),
            last_user: text.into(),
            last: LastMessage::User(text.into()),
            tools: Vec::new(),
            output_schema: None,
        }
    }

    #[test]
    fn replies_are_used_up_in_order_then_the_echo_answers() {
        let player = Player::new(Script {
            replies: vec![
                Reply::text("about cats").when_contains("cat"),
                Reply::text("twice").times(2),
            ],
            default: None,
        });
        assert_eq!(player.answer(&ask("hello")).text.as_deref(), Some("twice"));
        assert_eq!(
            player.answer(&ask("a cat")).text.as_deref(),
            Some("about cats")
        );
        assert_eq!(player.answer(&ask("a cat")).text.as_deref(), Some("twice"));
        assert_eq!(player.pending(), 0);
        assert_eq!(
            player.answer(&ask("a cat")).text.as_deref(),
            Some("echo: a cat")
        );
    }

    #[test]
    fn a_default_answers_when_nothing_fits_and_a_silent_default_keeps_its_delay() {
        let player = Player::new(Script {
            replies: vec![Reply::text("for b").for_model("b")],
            default: Some(Reply::text("fallback")),
        });
        assert_eq!(player.answer(&ask("x")).text.as_deref(), Some("fallback"));
        player.set_default(Some(Reply::default().with_delay(5)));
        let reply = player.answer(&ask("x"));
        assert_eq!(reply.text.as_deref(), Some("echo: x"));
        assert_eq!(reply.delay_ms, 5);
    }

    #[test]
    fn structured_output_is_answered_as_json_text_and_calls_get_ids() {
        let player = Player::new(Script {
            replies: vec![
                Reply::output(json!({"city": "Paris"})),
                Reply::tool_calls(vec![("a", Value::Null), ("b", json!({"x": 1}))]),
            ],
            default: None,
        });
        assert_eq!(
            player.answer(&ask("q")).text.as_deref(),
            Some(r#"{"city":"Paris"}"#)
        );
        let calls = player.answer(&ask("q")).tool_calls;
        assert_eq!(calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(calls[0].arguments, json!({}));
        assert_eq!(calls[1].id.as_deref(), Some("call_2"));
    }

    #[test]
    fn a_script_file_is_a_list_an_object_or_one_reply() {
        let list = Script::from_json(json!([{"text": "a"}, {"text": "b"}])).unwrap();
        assert_eq!(list.replies.len(), 2);
        let full = Script::from_json(json!({"replies": [{"text": "a"}], "default": {"text": "d"}}))
            .unwrap();
        assert_eq!(full.default, Some(Reply::text("d")));
        let one = Script::from_json(json!({"text": "only"})).unwrap();
        assert_eq!(one.replies, vec![Reply::text("only")]);
        assert!(Script::from_json(json!([{"text": 5}])).is_err());
    }

    #[test]
    fn the_echo_calls_a_named_tool_through_the_player() {
        let player = Player::new(Script::default());
        let mut request = ask("use the add tool");
        request.tools.push(OfferedTool {
            name: "add".into(),
            parameters: json!({"type": "object"}),
        });
        let reply = player.answer(&request);
        assert_eq!(reply.tool_calls[0].name, "add");
        assert_eq!(reply.text.as_deref(), Some(""));
    }
}
