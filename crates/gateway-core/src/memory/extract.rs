//! Auto-extraction: after a chat turn (and, when the agent opts in, an invocation) a model
//! reads the recent conversation and returns the facts worth remembering as JSON; they are
//! validated (type, importance floor, length), deduplicated against what is stored and saved
//! as `extracted`. Runs in the background, debounced per agent and user, a bounded number at
//! a time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_llm::{CompletionRequest, Message};
use gateway_store::{MemoryScope, MemorySource, MemoryType};
use tokio::sync::Semaphore;

use super::{MemoryBank, MemoryError, NewMemory, compact};

/// Most (agent, scope) pairs remembered for debouncing before old ones are dropped.
const MAX_DEBOUNCE_KEYS: usize = 10_000;
/// Most facts saved from one extraction.
const MAX_FACTS: usize = 20;
/// Most stored memories shown to the model as "already known".
const MAX_KNOWN: usize = 50;
/// Messages of the conversation the model reads.
pub(crate) const MAX_MESSAGES: usize = 10;

/// Who may extract now: one extraction per agent and scope per debounce interval, and a
/// bounded number at once across the gateway.
pub(crate) struct ExtractionGate {
    last: Mutex<HashMap<(String, String), Instant>>,
    permits: Arc<Semaphore>,
}

impl ExtractionGate {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            last: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// Whether an extraction for `key` may start now (and records that it does).
    pub fn admit(&self, agent_id: &str, scope: &MemoryScope, debounce: Duration) -> bool {
        let key = (
            agent_id.to_string(),
            match scope {
                MemoryScope::User(user) => format!("user:{user}"),
                _ => "shared".to_string(),
            },
        );
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < debounce)
        {
            return false;
        }
        if last.len() >= MAX_DEBOUNCE_KEYS {
            last.retain(|_, at| now.duration_since(*at) < debounce);
            if last.len() >= MAX_DEBOUNCE_KEYS {
                last.clear();
            }
        }
        last.insert(key, now);
        true
    }

    pub fn permits(&self) -> Arc<Semaphore> {
        Arc::clone(&self.permits)
    }
}

const INSTRUCTIONS: &str = "You maintain an AI agent's long-term memory of a user. From the \
conversation below, extract the discrete facts, preferences, decisions and outcomes worth \
remembering in later conversations, each paraphrased as one self-contained statement. Skip \
small talk and anything already known (listed below); if the conversation contradicts a known \
memory, state the new fact. Reply with only a JSON array of objects {\"content\": string, \
\"type\": \"semantic\" | \"episodic\" | \"procedural\", \"importance\": number from 0 to 1}, \
or [] when there is nothing worth remembering.";

fn normalised(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads `conversation` (role, text) and saves what is worth remembering in `scope`; how many
/// memories were saved.
pub(crate) async fn extract(
    bank: &MemoryBank,
    agent_id: &str,
    scope: &MemoryScope,
    conversation: &[(String, String)],
    min_importance: f64,
) -> Result<usize, MemoryError> {
    let Some(settings) = bank.settings(agent_id).filter(|s| s.enabled).cloned() else {
        return Err(MemoryError::Disabled(agent_id.to_string()));
    };
    let known = bank.scope_memories(agent_id, scope).await?;
    let known_lines: Vec<String> = known
        .iter()
        .take(MAX_KNOWN)
        .map(|m| format!("- {}", m.content.replace('\n', " ")))
        .collect();
    let transcript: Vec<String> = conversation
        .iter()
        .map(|(role, text)| format!("{role}: {text}"))
        .collect();
    let request = CompletionRequest {
        messages: vec![
            Message::system(INSTRUCTIONS),
            Message::user(format!(
                "Already known:\n{}\n\nConversation:\n{}",
                if known_lines.is_empty() {
                    "(nothing)".to_string()
                } else {
                    known_lines.join("\n")
                },
                transcript.join("\n")
            )),
        ],
        ..CompletionRequest::default()
    };
    let answer = bank
        .llm()
        .complete(&settings.model, &request)
        .await
        .map_err(|err| {
            MemoryError::ModelFailed(format!("extraction's model call failed: {err}"))
        })?;
    let Some(items) = super::parse_json_array(&answer.text) else {
        return Err(MemoryError::ModelFailed(format!(
            "extraction's answer is not a JSON array: {}",
            answer.text
        )));
    };
    let mut seen: HashSet<String> = known.iter().map(|m| normalised(&m.content)).collect();
    let mut saved = 0;
    for item in items.into_iter().take(MAX_FACTS) {
        let content = item["content"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        let importance = item["importance"].as_f64().unwrap_or(0.5).clamp(0.0, 1.0);
        if content.is_empty()
            || content.chars().count() > settings.max_content_chars
            || importance < min_importance
            || !seen.insert(normalised(&content))
        {
            continue;
        }
        let memory = NewMemory {
            content,
            memory_type: item["type"]
                .as_str()
                .and_then(MemoryType::parse)
                .unwrap_or_default(),
            importance,
            pinned: false,
            source: MemorySource::Extracted,
        };
        match bank.save(agent_id, scope, memory.clone()).await {
            Ok(_) => saved += 1,
            Err(MemoryError::Full(_)) => {
                // Make room once, then try again; a scope still full keeps what it has.
                compact::compact(bank, agent_id, scope).await?;
                if bank.save(agent_id, scope, memory).await.is_ok() {
                    saved += 1;
                } else {
                    break;
                }
            }
            Err(err) => return Err(err),
        }
    }
    if saved > 0 {
        compact::compact(bank, agent_id, scope).await?;
    }
    Ok(saved)
}
