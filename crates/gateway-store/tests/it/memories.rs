//! Agents' memories on every backend.

use chrono::{Duration, Utc};
use gateway_store::{
    MemoryFilter, MemoryRecord, MemoryScope, MemorySource, MemoryType, StoreError, new_memory_id,
};

use super::subjects;

fn memory(agent: &str, user: Option<&str>, content: &str) -> MemoryRecord {
    let now = Utc::now();
    MemoryRecord {
        id: new_memory_id(),
        agent_id: agent.into(),
        user_id: user.map(String::from),
        content: content.into(),
        memory_type: MemoryType::Semantic,
        source: MemorySource::Manual,
        importance: 0.5,
        pinned: false,
        access_count: 0,
        last_accessed_at: None,
        created_at: now,
        updated_at: now,
        embedding: None,
    }
}

#[tokio::test]
async fn memories_are_kept_per_agent_and_scope_with_every_field() {
    for subject in subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let mut alice = memory(
            "a",
            Some("alice"),
            "Alice likes tea.\nAnd 100% dark chocolate_",
        );
        alice.memory_type = MemoryType::Procedural;
        alice.source = MemorySource::Api;
        alice.importance = 0.9;
        alice.pinned = true;
        alice.embedding = Some(vec![0.25, -1.5, 3.0]);
        store.save_memory(&alice).await.unwrap();
        let shared = memory("a", None, "The office opens at nine.");
        store.save_memory(&shared).await.unwrap();
        let bob = memory("a", Some("bob"), "Bob likes coffee.");
        store.save_memory(&bob).await.unwrap();
        store
            .save_memory(&memory("other", Some("alice"), "Another agent's."))
            .await
            .unwrap();

        let read = store.get_memory("a", &alice.id).await.unwrap().unwrap();
        assert_eq!(read.content, alice.content, "{name}");
        assert_eq!(read.memory_type, MemoryType::Procedural, "{name}");
        assert_eq!(read.source, MemorySource::Api, "{name}");
        assert!(
            read.pinned && (read.importance - 0.9).abs() < 1e-9,
            "{name}"
        );
        assert_eq!(read.embedding, Some(vec![0.25, -1.5, 3.0]), "{name}");
        assert!(
            store
                .get_memory("other", &alice.id)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );

        let list = |scope: MemoryScope| MemoryFilter::scope("a", scope, 50);
        let (users, total) = store
            .list_memories(&list(MemoryScope::User("alice".into())))
            .await
            .unwrap();
        assert_eq!((users.len(), total), (1, 1), "{name}");
        let (shared_list, _) = store
            .list_memories(&list(MemoryScope::Shared))
            .await
            .unwrap();
        assert_eq!(shared_list[0].id, shared.id, "{name}");
        let (all, total) = store.list_memories(&list(MemoryScope::All)).await.unwrap();
        assert_eq!((all.len(), total), (3, 3), "{name}");

        // Text search is case-insensitive and takes `%` and `_` literally.
        let mut search = list(MemoryScope::All);
        search.contains = Some("100% DARK chocolate_".into());
        assert_eq!(store.list_memories(&search).await.unwrap().1, 1, "{name}");
        search.contains = Some("100%_".into());
        assert_eq!(store.list_memories(&search).await.unwrap().1, 0, "{name}");
        let mut by_type = list(MemoryScope::All);
        by_type.memory_type = Some(MemoryType::Procedural);
        by_type.source = Some(MemorySource::Api);
        assert_eq!(store.list_memories(&by_type).await.unwrap().1, 1, "{name}");

        // An update keeps created_at; a page is newest first.
        let mut changed = bob.clone();
        changed.content = "Bob likes green tea.".into();
        changed.created_at = Utc::now() + Duration::days(1);
        changed.updated_at = Utc::now() + Duration::seconds(5);
        store.save_memory(&changed).await.unwrap();
        let read = store.get_memory("a", &bob.id).await.unwrap().unwrap();
        assert_eq!(read.content, "Bob likes green tea.", "{name}");
        assert_eq!(
            read.created_at.timestamp_millis(),
            bob.created_at.timestamp_millis(),
            "{name}"
        );
        let mut page = list(MemoryScope::All);
        page.limit = 1;
        let (first, total) = store.list_memories(&page).await.unwrap();
        assert_eq!(
            (first[0].id.as_str(), total),
            (bob.id.as_str(), 3),
            "{name}"
        );

        // Another agent's id is not taken over.
        let mut thief = memory("b", None, "x");
        thief.id = alice.id.clone();
        assert!(
            matches!(
                store.save_memory(&thief).await,
                Err(StoreError::Conflict(_))
            ),
            "{name}"
        );

        // Accesses are counted.
        let at = Utc::now();
        store
            .touch_memories("a", &[alice.id.clone(), shared.id.clone()], at)
            .await
            .unwrap();
        store
            .touch_memories("a", &[alice.id.clone()], at)
            .await
            .unwrap();
        let read = store.get_memory("a", &alice.id).await.unwrap().unwrap();
        assert_eq!(read.access_count, 2, "{name}");
        assert_eq!(
            read.last_accessed_at.map(|t| t.timestamp_millis()),
            Some(at.timestamp_millis()),
            "{name}"
        );

        assert!(
            store.delete_memory("a", &shared.id).await.unwrap(),
            "{name}"
        );
        assert!(
            !store.delete_memory("a", &shared.id).await.unwrap(),
            "{name}"
        );
        assert!(
            !store.delete_memory("other", &alice.id).await.unwrap(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_replacement_happens_whole_or_not_at_all() {
    for subject in subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let old: Vec<MemoryRecord> = (0..4)
            .map(|i| memory("a", Some("u"), &format!("fact {i}")))
            .collect();
        for record in &old {
            store.save_memory(record).await.unwrap();
        }
        let mut summary = memory("a", Some("u"), "facts 0 to 3");
        summary.source = MemorySource::Compacted;
        // One original already gone: nothing changes.
        let mut remove: Vec<String> = old.iter().map(|m| m.id.clone()).collect();
        remove.push("missing".into());
        assert!(
            store
                .replace_memories("a", &remove, std::slice::from_ref(&summary))
                .await
                .is_err(),
            "{name}"
        );
        let scope = MemoryFilter::scope("a", MemoryScope::User("u".into()), 50);
        let (kept, _) = store.list_memories(&scope).await.unwrap();
        assert_eq!(kept.len(), 4, "{name}: originals kept");
        assert!(
            kept.iter().all(|m| m.source == MemorySource::Manual),
            "{name}"
        );

        remove.pop();
        store
            .replace_memories("a", &remove, std::slice::from_ref(&summary))
            .await
            .unwrap();
        let (kept, _) = store.list_memories(&scope).await.unwrap();
        assert_eq!(kept.len(), 1, "{name}");
        assert_eq!(kept[0].content, "facts 0 to 3", "{name}");
    }
}
