//! Agents' memories on every backend: the stores' and the workspace's files (0.2.13's
//! layout).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, Utc};
use gateway_store::files::MemoryFiles;
use gateway_store::{
    AgentMemoryStore, MemoryFilter, MemoryRecord, MemoryScope, MemorySource, MemoryType,
    StoreError, new_memory_id,
};

use super::{Subject, subjects};

/// A memory backend under test: every store of [`subjects`], and the file backend.
struct MemorySubject {
    name: &'static str,
    store: Arc<dyn AgentMemoryStore>,
    _keep: Option<Subject>,
    _dir: Option<tempfile::TempDir>,
}

async fn memory_subjects() -> Vec<MemorySubject> {
    let mut all: Vec<MemorySubject> = subjects()
        .await
        .into_iter()
        .map(|subject| MemorySubject {
            name: subject.name,
            store: Arc::clone(&subject.store) as Arc<dyn AgentMemoryStore>,
            _keep: Some(subject),
            _dir: None,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    all.push(MemorySubject {
        name: "files",
        store: Arc::new(MemoryFiles::new(dir.path().to_path_buf())),
        _keep: None,
        _dir: Some(dir),
    });
    all
}

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
    for subject in memory_subjects().await {
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
            matches!(store.save_memory(&thief).await, Err(StoreError::Clash(_))),
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
    for subject in memory_subjects().await {
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

/// A file backend on a fresh workspace folder.
fn files() -> (MemoryFiles, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (MemoryFiles::new(dir.path().to_path_buf()), dir)
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn a_memory_file_keeps_newlines_and_indented_lines() {
    let (store, dir) = files();
    let content = "Steps:\n  1. boil water\n\n    - then tea\n## Episodic\n- [fake] not an item";
    let mut steps = memory("chef", Some("ann"), content);
    steps.memory_type = MemoryType::Procedural;
    store.save_memory(&steps).await.unwrap();
    let fact = memory("chef", Some("ann"), "Ann is vegetarian.");
    store.save_memory(&fact).await.unwrap();

    let file = dir.path().join("agents/chef/memory/ann.md");
    assert_eq!(
        read(&file),
        format!(
            "## Semantic\n- [{}] Ann is vegetarian.\n\n## Procedural\n- [{}] Steps:\n    1. boil water\n  \n      - then tea\n  ## Episodic\n  - [fake] not an item\n",
            fact.id, steps.id
        )
    );
    let read_back = store.get_memory("chef", &steps.id).await.unwrap().unwrap();
    assert_eq!(read_back.content, content);
    assert_eq!(read_back.memory_type, MemoryType::Procedural);
    let scope = MemoryFilter::scope("chef", MemoryScope::User("ann".into()), 10);
    assert_eq!(store.list_memories(&scope).await.unwrap().1, 2);
}

#[tokio::test]
async fn items_among_prose_are_read_with_stable_ids_and_the_files_time() {
    let (store, dir) = files();
    let agent = dir.path().join("agents/helper");
    std::fs::create_dir_all(&agent).unwrap();
    let path = agent.join("MEMORY.md");
    std::fs::write(
        &path,
        "# What the helper knows\n\nWritten by hand.\n\n- [k1] Kept id.\n- No id here.\n\n## Procedural\nSome prose.\n- Restart with care.\n  twice.\n\n> a quote\n",
    )
    .unwrap();
    let modified: chrono::DateTime<Utc> =
        std::fs::metadata(&path).unwrap().modified().unwrap().into();

    let shared = MemoryFilter::scope("helper", MemoryScope::Shared, 10);
    let (first, total) = store.list_memories(&shared).await.unwrap();
    assert_eq!(total, 3);
    let (again, _) = store.list_memories(&shared).await.unwrap();
    assert_eq!(first, again, "ids and times are the same on every read");
    let by_content = |text: &str| first.iter().find(|m| m.content == text).unwrap().clone();
    assert_eq!(by_content("Kept id.").id, "k1");
    let restart = by_content("Restart with care.\ntwice.");
    assert_eq!(restart.memory_type, MemoryType::Procedural);
    assert_eq!(restart.id.len(), 12);
    assert!(restart.id.chars().all(|c| c.is_ascii_hexdigit()));
    let no_id = by_content("No id here.");
    assert_eq!(
        (
            no_id.importance,
            no_id.source,
            no_id.pinned,
            no_id.access_count
        ),
        (0.5, MemorySource::Manual, false, 0)
    );
    assert_eq!((no_id.created_at, no_id.updated_at), (modified, modified));
    assert_eq!(
        store.get_memory("helper", &no_id.id).await.unwrap(),
        Some(no_id.clone())
    );

    // Counting an access changes only the sidecar: the hand-written file stays as it is.
    let before = read(&path);
    store
        .touch_memories("helper", std::slice::from_ref(&no_id.id), Utc::now())
        .await
        .unwrap();
    assert_eq!(read(&path), before);
    let touched = store
        .get_memory("helper", &no_id.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(touched.access_count, 1);
    assert_eq!(touched.created_at, modified);
    // A real change writes the file out: each item gets its id, and the metadata stays.
    let mut edited = touched.clone();
    edited.content = "No id here, edited.".into();
    store.save_memory(&edited).await.unwrap();
    let text = read(&path);
    assert!(
        text.contains(&format!("- [{}] No id here, edited.\n", no_id.id)),
        "{text}"
    );
    let saved = store
        .get_memory("helper", &no_id.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((saved.access_count, saved.created_at), (1, modified));
}

#[tokio::test]
async fn a_user_id_unsafe_as_a_file_name_is_hashed_and_kept_in_the_sidecar() {
    let (store, dir) = files();
    let user = "Ann Smith <ann@example.com>/../../x";
    store
        .save_memory(&memory("chef", Some(user), "Ann likes soup."))
        .await
        .unwrap();
    // A user named like the shared file, or like a safe id, keeps a file of their own.
    store
        .save_memory(&memory("chef", Some("MEMORY"), "Not shared."))
        .await
        .unwrap();
    store
        .save_memory(&memory("chef", None, "Shared."))
        .await
        .unwrap();

    let folder = dir.path().join("agents/chef/memory");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], "MEMORY.md");
    let hashed = &names[1];
    assert!(
        hashed.starts_with("user-") && hashed.len() == 5 + 16 + 3,
        "0.2.13's name for an unsafe id: {hashed}"
    );

    let (all, total) = store
        .list_memories(&MemoryFilter::scope("chef", MemoryScope::All, 10))
        .await
        .unwrap();
    assert_eq!(total, 3);
    let soup = all.iter().find(|m| m.content == "Ann likes soup.").unwrap();
    assert_eq!(soup.user_id.as_deref(), Some(user));
    let of_ann = MemoryFilter::scope("chef", MemoryScope::User(user.into()), 10);
    assert_eq!(store.list_memories(&of_ann).await.unwrap().1, 1);
    let shared = MemoryFilter::scope("chef", MemoryScope::Shared, 10);
    let (shared, _) = store.list_memories(&shared).await.unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].content, "Shared.");

    // Another user whose id is that hashed name does not read or write Ann's file.
    let impostor = hashed.trim_end_matches(".md").to_string();
    let of_impostor = MemoryFilter::scope("chef", MemoryScope::User(impostor.clone()), 10);
    assert_eq!(store.list_memories(&of_impostor).await.unwrap().1, 0);
    assert!(matches!(
        store
            .save_memory(&memory("chef", Some(&impostor), "Mine now."))
            .await,
        Err(StoreError::Clash(_))
    ));
}

#[tokio::test]
async fn a_memory_moves_when_its_scope_changes() {
    let (store, dir) = files();
    let mut fact = memory("chef", Some("ann"), "Moves.");
    store.save_memory(&fact).await.unwrap();
    fact.user_id = None;
    store.save_memory(&fact).await.unwrap();
    assert!(!read(dir.path().join("agents/chef/memory/ann.md")).contains("Moves."));
    assert!(read(dir.path().join("agents/chef/MEMORY.md")).contains("Moves."));
    let (all, total) = store
        .list_memories(&MemoryFilter::scope("chef", MemoryScope::All, 10))
        .await
        .unwrap();
    assert_eq!((total, all[0].user_id.as_deref()), (1, None));
}

#[tokio::test]
async fn updates_keep_their_place_and_new_memories_go_last_in_their_section() {
    let (store, dir) = files();
    let mut ids = Vec::new();
    for i in 0..3 {
        let fact = memory("chef", None, &format!("fact {i}"));
        store.save_memory(&fact).await.unwrap();
        ids.push(fact.id);
    }
    let mut first = store.get_memory("chef", &ids[0]).await.unwrap().unwrap();
    first.content = "fact 0, updated".into();
    first.updated_at = Utc::now();
    store.save_memory(&first).await.unwrap();
    let mut event = memory("chef", None, "it rained");
    event.memory_type = MemoryType::Episodic;
    store.save_memory(&event).await.unwrap();
    let last = memory("chef", None, "fact 3");
    store.save_memory(&last).await.unwrap();
    assert_eq!(
        read(dir.path().join("agents/chef/MEMORY.md")),
        format!(
            "## Semantic\n- [{}] fact 0, updated\n- [{}] fact 1\n- [{}] fact 2\n- [{}] fact 3\n\n## Episodic\n- [{}] it rained\n",
            ids[0], ids[1], ids[2], last.id, event.id
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_one_scope_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Two stores on one folder stand for two processes: only the lock file keeps them apart.
    let mut tasks = Vec::new();
    for writer in 0..2 {
        let store = MemoryFiles::new(dir.path().to_path_buf());
        tasks.push(tokio::spawn(async move {
            let store = Arc::new(store);
            let mut saves = Vec::new();
            for i in 0..50 {
                let store = Arc::clone(&store);
                saves.push(tokio::spawn(async move {
                    let record = memory("busy", Some("ann"), &format!("writer {writer} fact {i}"));
                    store.save_memory(&record).await
                }));
            }
            for save in saves {
                save.await.unwrap().unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let store = MemoryFiles::new(dir.path().to_path_buf());
    let scope = MemoryFilter::scope("busy", MemoryScope::User("ann".into()), 500);
    let (all, total) = store.list_memories(&scope).await.unwrap();
    assert_eq!(total, 100);
    let mut contents: Vec<&str> = all.iter().map(|m| m.content.as_str()).collect();
    contents.sort_unstable();
    contents.dedup();
    assert_eq!(contents.len(), 100);
    // No temporary file is left behind.
    let leftovers: Vec<PathBuf> = walk(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_file_above_8_mib_is_refused() {
    let (store, dir) = files();
    let agent = dir.path().join("agents/big");
    std::fs::create_dir_all(&agent).unwrap();
    let file = std::fs::File::create(agent.join("MEMORY.md")).unwrap();
    file.set_len(8 * 1024 * 1024 + 1).unwrap();
    let shared = MemoryFilter::scope("big", MemoryScope::Shared, 10);
    let err = store.list_memories(&shared).await.unwrap_err();
    assert!(err.to_string().contains("larger than 8 MiB"), "{err}");
    assert!(
        store
            .save_memory(&memory("big", None, "more"))
            .await
            .is_err()
    );
    assert!(
        store
            .list_memories(&MemoryFilter::scope("../big", MemoryScope::Shared, 1))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_example_memory_file_of_0_2_13_round_trips_unchanged() {
    let Some(workspace) =
        test_services::service_url("AGW_0213_EXAMPLE_WORKSPACE", "0.2.13's example workspace")
    else {
        return;
    };
    let original_path = Path::new(&workspace).join("agents/travel-planner/MEMORY.md");
    let original = std::fs::read(&original_path).unwrap_or_else(|err| {
        panic!("{}: {err}", original_path.display());
    });
    let (store, dir) = files();
    let agent = dir.path().join("agents/travel-planner");
    std::fs::create_dir_all(&agent).unwrap();
    let path = agent.join("MEMORY.md");
    std::fs::write(&path, &original).unwrap();

    let (all, total) = store
        .list_memories(&MemoryFilter::scope("travel-planner", MemoryScope::All, 50))
        .await
        .unwrap();
    assert_eq!(total, 13);
    let type_of = |id: &str| all.iter().find(|m| m.id == id).unwrap().memory_type;
    assert_eq!(type_of("2b63eda02ec4"), MemoryType::Semantic);
    assert_eq!(type_of("3846d6a5ab93"), MemoryType::Semantic);
    assert_eq!(type_of("1123af39111d"), MemoryType::Episodic);
    assert_eq!(
        all.iter()
            .filter(|m| m.memory_type == MemoryType::Semantic)
            .count(),
        12
    );
    let budget = all.iter().find(|m| m.id == "23a0a0649a52").unwrap();
    assert_eq!(budget.content, "The user's budget is around $2000.");
    assert_eq!(budget.user_id, None);

    // A touch, and a save of one memory unchanged, leave the markdown as it was.
    store
        .touch_memories("travel-planner", &["9ed51b99ab4d".into()], Utc::now())
        .await
        .unwrap();
    let mut same = store
        .get_memory("travel-planner", "9ed51b99ab4d")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.access_count, 1);
    same.importance = 0.8;
    same.updated_at = Utc::now();
    store.save_memory(&same).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), original);
    let read_back = store
        .get_memory("travel-planner", "9ed51b99ab4d")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read_back.access_count, read_back.importance), (1, 0.8));
}

#[tokio::test]
async fn a_0_2_13_file_of_a_hashed_user_id_is_found_by_the_id() {
    use sha2::Digest;
    let (store, dir) = files();
    let user = "auth0|abc+def";
    let stem = format!(
        "user-{}",
        &hex::encode(sha2::Sha256::digest(user.as_bytes()))[..16]
    );
    let folder = dir.path().join("agents/chef/memory");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join(format!("{stem}.md")),
        "## Semantic\n- [0123456789ab] Likes soup.\n",
    )
    .unwrap();
    let of_user = MemoryFilter::scope("chef", MemoryScope::User(user.into()), 10);
    let (found, _) = store.list_memories(&of_user).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "0123456789ab");
    assert_eq!(found[0].user_id.as_deref(), Some(user));
}

#[tokio::test]
async fn reading_and_counting_accesses_leave_a_hand_written_file_as_it_is() {
    let (store, dir) = files();
    let path = dir.path().join("agents/chef/MEMORY.md");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let written = "# What the chef knows\r\n\r\nNotes kept by hand.\r\n\r\n## Semantic\r\n- Soup on Fridays.\r\n* not an item\r\n";
    std::fs::write(&path, written).unwrap();
    let (found, _) = store
        .list_memories(&MemoryFilter::scope("chef", MemoryScope::Shared, 10))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    store
        .touch_memories("chef", &[found[0].id.clone()], Utc::now())
        .await
        .unwrap();
    assert_eq!(read(&path), written, "only the sidecar changes");
    let again = store
        .get_memory("chef", &found[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.access_count, 1);
}

#[tokio::test]
async fn an_update_changes_what_a_memory_says_where_it_still_is() {
    for subject in memory_subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let fact = memory("a", Some("u"), "First words.");
        store.save_memory(&fact).await.unwrap();
        store
            .touch_memories("a", std::slice::from_ref(&fact.id), Utc::now())
            .await
            .unwrap();
        let mut edit = fact.clone();
        edit.content = "Second words.".into();
        edit.memory_type = MemoryType::Episodic;
        edit.pinned = true;
        edit.access_count = 0;
        edit.user_id = None;
        assert!(store.update_memory(&edit).await.unwrap(), "{name}");
        let read = store.get_memory("a", &fact.id).await.unwrap().unwrap();
        assert_eq!(
            (read.content.as_str(), read.memory_type, read.pinned),
            ("Second words.", MemoryType::Episodic, true),
            "{name}"
        );
        // The scope and the access count are the memory's own.
        assert_eq!(
            (read.user_id.as_deref(), read.access_count),
            (Some("u"), 1),
            "{name}"
        );
        // Gone meanwhile: not brought back.
        store.delete_memory("a", &fact.id).await.unwrap();
        assert!(!store.update_memory(&edit).await.unwrap(), "{name}");
        assert!(
            store.get_memory("a", &fact.id).await.unwrap().is_none(),
            "{name}"
        );
        let mut other = edit.clone();
        other.agent_id = "b".into();
        assert!(!store.update_memory(&other).await.unwrap(), "{name}");
    }
}
