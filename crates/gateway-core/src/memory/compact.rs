//! Compaction: when a scope holds more memories than the agent's compaction limit, the
//! lowest-scored unprotected ones are summarised by a model, one call per type, and the
//! summaries replace them in one store transaction. A failed or unreadable summary changes
//! nothing (0.2.13 deleted the originals anyway).

use chrono::{DateTime, Utc};
use gateway_llm::{CompletionRequest, LlmClient, Message, ModelTarget};
use gateway_store::{MemoryRecord, MemoryScope, MemorySource, MemoryType, new_memory_id};
use gateway_workspace::config::CompactionConfig;

use super::{MemoryBank, MemoryError};

/// What a memory is worth keeping: importance, decayed per day since it was last used.
fn score(memory: &MemoryRecord, decay: f64, now: DateTime<Utc>) -> f64 {
    let since = memory.last_accessed_at.unwrap_or(memory.created_at);
    let days = (now - since).num_seconds().max(0) as f64 / 86_400.0;
    memory.importance * decay.powf(days)
}

/// The memories to summarise: the lowest-scored `floor(count × compact_ratio)` of those not
/// protected (pinned, important, or too young).
pub(crate) fn select(
    memories: &[MemoryRecord],
    config: &CompactionConfig,
    now: DateTime<Utc>,
) -> Vec<MemoryRecord> {
    let min_age = i64::try_from(config.min_age_hours)
        .ok()
        .and_then(chrono::TimeDelta::try_hours)
        .unwrap_or(chrono::TimeDelta::MAX);
    let mut candidates: Vec<(f64, &MemoryRecord)> = memories
        .iter()
        .filter(|m| {
            !m.pinned && m.importance < config.importance_threshold && now - m.created_at >= min_age
        })
        .map(|m| (score(m, config.decay_factor, now), m))
        .collect();
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
    let take = (memories.len() as f64 * config.compact_ratio).floor() as usize;
    candidates
        .into_iter()
        .take(take)
        .map(|(_, m)| m.clone())
        .collect()
}

const INSTRUCTIONS: &str = "You compact an AI agent's long-term memory. Merge the memories \
below into fewer, self-contained statements: combine overlapping ones, keep every specific \
detail (names, numbers, dates, preferences), drop nothing that is still true. Aim for about a \
third as many items. Reply with only a JSON array of objects {\"content\": string, \
\"importance\": number from 0 to 1}.";

/// The summaries a model gives for one group, or why there are none.
async fn summarise(
    llm: &LlmClient,
    model: &ModelTarget,
    group: &[MemoryRecord],
    max_chars: usize,
) -> Result<Vec<(String, f64)>, String> {
    let listing: Vec<String> = group
        .iter()
        .map(|m| format!("- (importance {:.2}) {}", m.importance, m.content))
        .collect();
    let request = CompletionRequest {
        messages: vec![
            Message::system(INSTRUCTIONS),
            Message::user(listing.join("\n")),
        ],
        ..CompletionRequest::default()
    };
    let completion = llm
        .complete(model, &request)
        .await
        .map_err(|err| format!("the model call failed: {err}"))?;
    let items = super::parse_json_array(&completion.text)
        .ok_or_else(|| format!("the answer is not a JSON array: {}", completion.text))?;
    let mut summaries = Vec::new();
    for item in items {
        let content = item["content"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        if content.is_empty() || content.chars().count() > max_chars {
            return Err(format!(
                "a summary is empty or longer than {max_chars} characters"
            ));
        }
        let importance = item["importance"].as_f64().unwrap_or(0.5).clamp(0.0, 1.0);
        summaries.push((content, importance));
    }
    if summaries.is_empty() {
        return Err("the model gave no summary".into());
    }
    // A compaction that does not shrink the group would let the scope grow with each one.
    if summaries.len() >= group.len() {
        return Err(format!(
            "the model gave {} summaries for {} memories (fewer are needed)",
            summaries.len(),
            group.len()
        ));
    }
    Ok(summaries)
}

/// Compacts `scope` of `agent_id` when it holds more than the compaction limit; how many
/// memories the summaries replaced (0 when under the limit, or compaction is off).
pub(crate) async fn compact(
    bank: &MemoryBank,
    agent_id: &str,
    scope: &MemoryScope,
) -> Result<usize, MemoryError> {
    let Some(settings) = bank.settings(agent_id).filter(|s| s.enabled) else {
        return Err(MemoryError::Disabled(agent_id.to_string()));
    };
    let config = &settings.compaction;
    if !config.enabled {
        return Ok(0);
    }
    let memories = bank.scope_memories(agent_id, scope).await?;
    if memories.len() <= config.max_memories_per_scope as usize {
        return Ok(0);
    }
    let now = Utc::now();
    let chosen = select(&memories, config, now);
    let user_id = match scope {
        MemoryScope::User(user) => Some(user.clone()),
        _ => None,
    };
    let mut summaries = Vec::new();
    for memory_type in MemoryType::ALL {
        let group: Vec<MemoryRecord> = chosen
            .iter()
            .filter(|m| m.memory_type == memory_type)
            .cloned()
            .collect();
        if group.len() < 2 {
            continue;
        }
        let merged = summarise(
            bank.llm(),
            &settings.model,
            &group,
            settings.max_content_chars,
        )
        .await
        .map_err(|why| {
            MemoryError::ModelFailed(format!(
                "compaction of agent '{agent_id}' stopped, nothing was changed: {why}"
            ))
        })?;
        let replaced: Vec<String> = group.iter().map(|m| m.id.clone()).collect();
        for (content, importance) in merged {
            let embedding = bank.embedding_of(&content).await;
            summaries.push((
                replaced.clone(),
                MemoryRecord {
                    id: new_memory_id(),
                    agent_id: agent_id.to_string(),
                    user_id: user_id.clone(),
                    content,
                    memory_type,
                    source: MemorySource::Compacted,
                    importance,
                    pinned: false,
                    access_count: 0,
                    last_accessed_at: None,
                    created_at: now,
                    updated_at: now,
                    embedding,
                },
            ));
        }
    }
    if summaries.is_empty() {
        return Ok(0);
    }
    let mut remove: Vec<String> = summaries.iter().flat_map(|(ids, _)| ids.clone()).collect();
    remove.sort();
    remove.dedup();
    let add: Vec<MemoryRecord> = summaries.into_iter().map(|(_, m)| m).collect();
    bank.store()
        .replace_memories(agent_id, &remove, &add)
        .await?;
    tracing::info!(
        agent = agent_id,
        replaced = remove.len(),
        summaries = add.len(),
        "memories compacted"
    );
    Ok(remove.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(id: &str, importance: f64, age_days: i64) -> MemoryRecord {
        let created = Utc::now() - chrono::Duration::days(age_days);
        MemoryRecord {
            id: id.into(),
            agent_id: "a".into(),
            user_id: None,
            content: id.into(),
            memory_type: MemoryType::Semantic,
            source: MemorySource::Manual,
            importance,
            pinned: false,
            access_count: 0,
            last_accessed_at: None,
            created_at: created,
            updated_at: created,
            embedding: None,
        }
    }

    #[test]
    fn selects_the_lowest_scored_unprotected_share() {
        let mut pinned = memory("pinned", 0.1, 10);
        pinned.pinned = true;
        let memories = vec![
            memory("old-low", 0.3, 30),
            memory("new-low", 0.3, 2),
            memory("important", 0.9, 30),
            memory("young", 0.1, 0),
            pinned,
            memory("mid", 0.5, 5),
        ];
        let config = CompactionConfig::default();
        let chosen = select(&memories, &config, Utc::now());
        let ids: Vec<&str> = chosen.iter().map(|m| m.id.as_str()).collect();
        // 6 × 0.5 = 3 at most, among the 3 unprotected ones, lowest score first.
        assert_eq!(ids, ["old-low", "new-low", "mid"]);
    }
}
