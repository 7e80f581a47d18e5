//! The markdown of a memory file, as 0.2.13 wrote and read it: one `## Semantic`,
//! `## Episodic` or `## Procedural` section per type that has memories, one `- [id] content`
//! item per memory. Content with newlines continues on lines indented by two spaces (a list
//! item's continuation, which 0.2.13 skips rather than misreads).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::records::MemoryType;

/// One `- ` item of a memory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Item {
    /// The `[id]` the line starts with; `None` for an item written by hand without one.
    pub id: Option<String>,
    pub content: String,
    /// The type of the section the item is in (semantic before any section heading).
    pub memory_type: MemoryType,
}

fn heading(memory_type: MemoryType) -> &'static str {
    match memory_type {
        MemoryType::Semantic => "## Semantic",
        MemoryType::Episodic => "## Episodic",
        MemoryType::Procedural => "## Procedural",
    }
}

/// The type a section heading names (trailing whitespace allowed, as 0.2.13 allowed it).
fn section(line: &str) -> Option<MemoryType> {
    MemoryType::ALL
        .into_iter()
        .find(|t| line.trim_end() == heading(*t))
}

/// The `[id]` of an item's text and the rest: `[id] content` (an id holds no `]`).
fn split_id(text: &str) -> (Option<String>, &str) {
    if let Some(inner) = text.strip_prefix('[')
        && let Some(end) = inner.find(']')
        && end > 0
        && let Some(content) = inner[end + 1..].strip_prefix(' ')
    {
        return (Some(inner[..end].to_string()), content);
    }
    (None, text)
}

/// The items of a memory file, in file order. Lines that are not items (other headings,
/// blank lines, prose) are skipped; a line indented by two spaces right after an item
/// continues its content (joined with `\n`, the two spaces removed).
pub(super) fn parse(text: &str) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    let mut current = MemoryType::Semantic;
    // Whether the previous line belongs to an item (which a continuation line extends).
    let mut open = false;
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if open
            && let Some(rest) = line.strip_prefix("  ")
            && let Some(item) = items.last_mut()
        {
            item.content.push('\n');
            item.content.push_str(rest);
            continue;
        }
        open = false;
        if let Some(memory_type) = section(line) {
            current = memory_type;
        } else if let Some(text) = line.strip_prefix("- ")
            && !text.is_empty()
        {
            let (id, content) = split_id(text);
            items.push(Item {
                id,
                content: content.to_string(),
                memory_type: current,
            });
            open = true;
        }
    }
    items
}

/// The markdown of `items` (id, content, type) in 0.2.13's form: the sections in type order,
/// each holding its items in the order given, a blank line between sections, a newline at the
/// end; empty when there is no item.
pub(super) fn render<'a>(items: &[(&'a str, &'a str, MemoryType)]) -> String {
    let mut out = String::new();
    for memory_type in MemoryType::ALL {
        let mut section = items
            .iter()
            .filter(|(_, _, t)| *t == memory_type)
            .peekable();
        if section.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(heading(memory_type));
        out.push('\n');
        for (id, content, _) in section {
            out.push_str("- [");
            out.push_str(id);
            out.push_str("] ");
            out.push_str(&content.replace('\n', "\n  "));
            out.push('\n');
        }
    }
    out
}

/// Whether `id` can be written as an item's `[id]` and read back the same.
pub(super) fn writable_id(id: &str) -> bool {
    !id.is_empty() && !id.contains(']') && !id.chars().any(char::is_control)
}

/// The ids of `items`: each item's own, or for an item without one an id derived from the
/// agent, the scope's user and the content (the first 12 hex characters of their SHA-256),
/// the same on every read. A repeated id-less content gets its occurrence number mixed in.
pub(super) fn ids(items: &[Item], agent_id: &str, user_id: Option<&str>) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    items
        .iter()
        .map(|item| match &item.id {
            Some(id) => id.clone(),
            None => {
                let occurrence = seen.entry(item.content.as_str()).or_insert(0);
                let mut hasher = Sha256::new();
                hasher.update(agent_id.as_bytes());
                hasher.update([0]);
                hasher.update(user_id.unwrap_or_default().as_bytes());
                hasher.update([0]);
                hasher.update(item.content.as_bytes());
                if *occurrence > 0 {
                    hasher.update([0]);
                    hasher.update(occurrence.to_string().as_bytes());
                }
                *occurrence += 1;
                hex::encode(hasher.finalize())[..12].to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, content: &str, memory_type: MemoryType) -> Item {
        Item {
            id: Some(id.into()),
            content: content.into(),
            memory_type,
        }
    }

    fn round_trip(items: &[Item]) -> String {
        let rows: Vec<(&str, &str, MemoryType)> = items
            .iter()
            .map(|i| {
                (
                    i.id.as_deref().unwrap_or(""),
                    i.content.as_str(),
                    i.memory_type,
                )
            })
            .collect();
        render(&rows)
    }

    #[test]
    fn sections_come_in_type_order_with_a_blank_line_between() {
        let items = [
            item("p1", "How to", MemoryType::Procedural),
            item("s1", "Fact one", MemoryType::Semantic),
            item("s2", "Fact two", MemoryType::Semantic),
        ];
        let text = round_trip(&items);
        assert_eq!(
            text,
            "## Semantic\n- [s1] Fact one\n- [s2] Fact two\n\n## Procedural\n- [p1] How to\n"
        );
        let read = parse(&text);
        assert_eq!(read, [items[1].clone(), items[2].clone(), items[0].clone()]);
        assert_eq!(round_trip(&read), text);
        assert_eq!(render(&[]), "");
        assert!(parse("").is_empty());
    }

    #[test]
    fn newlines_and_indented_lines_survive() {
        let content = "first\n  indented two\n\n- not an item\n## Episodic\n\tlast ";
        let items = [
            item("a", content, MemoryType::Episodic),
            item("b", "after", MemoryType::Episodic),
        ];
        let text = round_trip(&items);
        assert_eq!(
            text,
            "## Episodic\n- [a] first\n    indented two\n  \n  - not an item\n  ## Episodic\n  \tlast \n- [b] after\n"
        );
        assert_eq!(parse(&text), items);
    }

    #[test]
    fn prose_and_other_headings_are_skipped() {
        let text = "# Memories of the agent\n\nSome prose.\n- [x1] one\n\n## Notes\n  not a continuation\n## Procedural  \n- two\n- [] three\n- [y] \n-\n- \n*  star\n";
        let items = parse(text);
        assert_eq!(
            items,
            [
                item("x1", "one", MemoryType::Semantic),
                Item {
                    id: None,
                    content: "two".into(),
                    memory_type: MemoryType::Procedural
                },
                Item {
                    id: None,
                    content: "[] three".into(),
                    memory_type: MemoryType::Procedural
                },
                item("y", "", MemoryType::Procedural),
            ]
        );
    }

    #[test]
    fn crlf_lines_are_read_like_lf_lines() {
        let items = parse("## Episodic\r\n- [a] one\r\n  two\r\n");
        assert_eq!(items, [item("a", "one\ntwo", MemoryType::Episodic)]);
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let items = parse("- same\n- same\n- other\n- [own] same\n");
        let first = ids(&items, "agent", Some("alice"));
        assert_eq!(first, ids(&items, "agent", Some("alice")));
        assert_eq!(first[3], "own");
        assert!(first[..3].iter().all(|id| id.len() == 12));
        assert_ne!(first[0], first[1]);
        assert_ne!(first[0], first[2]);
        assert_ne!(first[0], ids(&items, "agent", None)[0]);
        assert_ne!(first[0], ids(&items, "agent2", Some("alice"))[0]);
    }

    #[test]
    fn only_ids_that_read_back_are_writable() {
        assert!(writable_id("2b63eda02ec4"));
        assert!(writable_id("a b"));
        assert!(!writable_id(""));
        assert!(!writable_id("a]b"));
        assert!(!writable_id("a\nb"));
    }
}
