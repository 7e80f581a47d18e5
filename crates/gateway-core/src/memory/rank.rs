//! Ranking memories against a text: the share of the text's words a memory contains, blended
//! with the cosine similarity of their embeddings when both have one; and packing the best
//! into a character budget.

use std::collections::HashSet;

use gateway_store::MemoryRecord;

use super::prompt_line;

/// A memory with its relevance to a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub memory: MemoryRecord,
    /// 0 when no word of the query is in it; the user's own memories weigh 1.2 times more.
    pub score: f64,
    /// Whether it is the user's (else the agent's shared knowledge).
    pub own: bool,
}

/// Words too common to tell memories apart.
const COMMON: &[&str] = &[
    "the", "and", "for", "are", "was", "you", "your", "with", "that", "this", "what", "which",
    "have", "has", "had", "not", "but", "can", "from", "about", "into", "how", "who", "when",
    "where", "why", "does", "did", "will", "would", "should", "could", "there", "their", "them",
    "they", "our", "its", "any", "all", "some", "a", "an", "is", "it", "of", "to", "in", "on",
    "at", "by", "or", "be", "me", "my", "i", "do", "so", "if", "as", "we",
];

/// The distinct lowercase words of `text` that carry meaning.
fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .filter(|w| !COMMON.contains(&w.as_str()))
        .collect()
}

/// How well `memory` answers the query words (0 to 1).
fn relevance(query: &HashSet<String>, memory: &MemoryRecord) -> f64 {
    if query.is_empty() {
        return 0.0;
    }
    let content = words(&memory.content);
    let found = query.iter().filter(|w| content.contains(*w)).count();
    found as f64 / query.len() as f64
}

/// Best first: score, then pinned, importance, newest.
fn order(a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then(b.memory.pinned.cmp(&a.memory.pinned))
        .then(b.memory.importance.total_cmp(&a.memory.importance))
        .then(b.memory.updated_at.cmp(&a.memory.updated_at))
        .then(a.memory.id.cmp(&b.memory.id))
}

/// The cosine similarity of two vectors (0 when their sizes differ or one is zero).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let norms = norm(a) * norm(b);
    if norms == 0.0 {
        0.0
    } else {
        (dot / norms).max(0.0)
    }
}

/// Ranks `(memory, own)` pairs against `query`, best first.
pub(crate) fn rank(
    query: &str,
    query_vector: Option<&[f32]>,
    memories: impl Iterator<Item = (MemoryRecord, bool)>,
) -> Vec<Ranked> {
    let query = words(query);
    let mut ranked: Vec<Ranked> = memories
        .map(|(memory, own)| {
            let keywords = relevance(&query, &memory);
            let relevance = match (query_vector, memory.embedding.as_deref()) {
                (Some(q), Some(m)) => 0.6 * cosine(q, m) + 0.4 * keywords,
                _ => keywords,
            };
            let score = relevance * if own { 1.2 } else { 1.0 };
            Ranked { memory, score, own }
        })
        .collect();
    ranked.sort_by(order);
    ranked
}

/// The memories to inject from one scope within `budget` characters: pinned ones first, then
/// the most relevant to `input`, then the newest; a memory too long for what is left is
/// skipped for shorter ones. Returns them and the characters spent.
pub(crate) fn pack(
    input: &str,
    input_vector: Option<&[f32]>,
    memories: Vec<MemoryRecord>,
    budget: usize,
) -> (Vec<MemoryRecord>, usize) {
    let mut ranked = rank(
        input,
        input_vector,
        memories.into_iter().map(|m| (m, false)),
    );
    ranked.sort_by(|a, b| b.memory.pinned.cmp(&a.memory.pinned).then(order(a, b)));
    let mut spent = 0;
    let mut chosen = Vec::new();
    for Ranked { memory, .. } in ranked {
        let cost = prompt_line(&memory).chars().count() + 1;
        if spent + cost <= budget {
            spent += cost;
            chosen.push(memory);
        }
    }
    (chosen, spent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};
    use gateway_store::{MemorySource, MemoryType};

    fn memory(id: &str, content: &str) -> MemoryRecord {
        MemoryRecord {
            id: id.into(),
            agent_id: "a".into(),
            user_id: None,
            content: content.into(),
            memory_type: MemoryType::Semantic,
            source: MemorySource::Manual,
            importance: 0.5,
            pinned: false,
            access_count: 0,
            last_accessed_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            embedding: None,
        }
    }

    #[test]
    fn ranks_by_the_share_of_query_words_and_prefers_the_users_own() {
        let ranked = rank(
            "Where does the user like to travel in Asia?",
            None,
            vec![
                (memory("1", "Coffee, black, no sugar."), true),
                (memory("2", "The user wants to travel to Asia."), false),
                (memory("3", "The user's travel plans: Asia in May."), true),
            ]
            .into_iter(),
        );
        let ids: Vec<&str> = ranked.iter().map(|r| r.memory.id.as_str()).collect();
        assert_eq!(ids, ["3", "2", "1"]);
        assert!(ranked[0].score > ranked[1].score && ranked[2].score == 0.0);
    }

    #[test]
    fn packs_pinned_first_then_relevant_then_newest_within_the_budget() {
        let mut pinned = memory("p", "Always answer in French.");
        pinned.pinned = true;
        let relevant = memory("r", "The user's dog is called Rex.");
        let mut newest = memory("n", "Something else entirely.");
        newest.updated_at = Utc::now() + Duration::hours(1);
        let long = memory("l", &"x".repeat(500));
        let all = vec![newest.clone(), long, relevant.clone(), pinned.clone()];
        let (chosen, spent) = pack("what is my dog called", None, all, 120);
        let ids: Vec<&str> = chosen.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            ["p", "r", "n"],
            "the long one does not fit and is skipped"
        );
        assert!(spent <= 120);
    }

    #[test]
    fn embeddings_find_what_keywords_miss() {
        let mut pet = memory("pet", "Rex is a golden retriever.");
        pet.embedding = Some(vec![1.0, 0.0]);
        let mut food = memory("food", "Prefers dinner at eight.");
        food.embedding = Some(vec![0.0, 1.0]);
        let ranked = rank(
            "tell me about the dog",
            Some(&[0.9, 0.1]),
            vec![(food, false), (pet, false)].into_iter(),
        );
        assert_eq!(ranked[0].memory.id, "pet");
        assert!(ranked[0].score > 0.5 && ranked[1].score < 0.1);
    }
}
