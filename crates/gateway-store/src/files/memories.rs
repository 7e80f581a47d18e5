//! Agents' memories in the workspace's files: [`AgentMemoryStore`] for [`MemoryFiles`].
//!
//! Every write is a read-modify-write of whole scope files under two locks: an in-process
//! one per file (tasks wait without holding a blocking thread) and an advisory lock file
//! between processes; the files are replaced by renaming, so a reader never sees half of one.
//! Memory ids are unique across agents as in the SQL tables: saving a new id looks through
//! the other agents' files too.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::OwnedMutexGuard;

use super::markdown;
use super::scope::{self, Loaded, ScopeFile, fs_error};
use crate::error::StoreError;
use crate::records::{AgentMemoryStore, MemoryFilter, MemoryRecord, MemoryScope};

/// Agents' memories as markdown files under a workspace, readable and writable by 0.2.13:
/// shared ones in `agents/<id>/MEMORY.md`, a user's in `agents/<id>/memory/<user>.md`, what
/// the markdown cannot hold in JSON sidecars (see the `scope` module).
pub struct MemoryFiles {
    root: PathBuf,
    /// One lock per scope file for this process's writers.
    locks: std::sync::Mutex<HashMap<ScopeFile, Arc<tokio::sync::Mutex<()>>>>,
}

/// How many per-file locks are kept before the unused ones are dropped.
const KEPT_LOCKS: usize = 1024;

impl MemoryFiles {
    /// The memories of the workspace at `workspace_root` (the folder holding `agents/`).
    pub fn new(workspace_root: PathBuf) -> Self {
        Self {
            root: workspace_root,
            locks: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The folder of `agent_id`, refused when the id could name another folder.
    fn agent_dir(&self, agent_id: &str) -> Result<PathBuf, StoreError> {
        let unsafe_id = agent_id.is_empty()
            || agent_id == "."
            || agent_id.contains(['/', '\\', '\0'])
            || agent_id.contains("..");
        if unsafe_id {
            return Err(fs_error(
                format!("agent id '{agent_id}' cannot name a memory folder"),
                io::Error::new(io::ErrorKind::InvalidInput, "unsafe agent id"),
            ));
        }
        Ok(self.root.join("agents").join(agent_id))
    }

    /// This process's locks of `files` (sorted), taken in order.
    async fn guards(&self, files: &[ScopeFile]) -> Vec<OwnedMutexGuard<()>> {
        let mutexes: Vec<_> = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            if locks.len() > KEPT_LOCKS {
                locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            files
                .iter()
                .map(|file| Arc::clone(locks.entry(file.clone()).or_default()))
                .collect()
        };
        let mut guards = Vec::with_capacity(mutexes.len());
        for mutex in mutexes {
            guards.push(mutex.lock_owned().await);
        }
        guards
    }

    /// Reads `files`, locks them against every other writer, lets `apply` change their
    /// memories and writes back what changed. When `apply` fails nothing is written.
    async fn change<T, F>(
        &self,
        agent_id: &str,
        mut files: Vec<ScopeFile>,
        apply: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut [Loaded]) -> Result<T, StoreError> + Send + 'static,
    {
        // One order for everyone: two writers of the same files cannot wait for each other.
        files.sort();
        files.dedup();
        let _guards = self.guards(&files).await;
        let agent_id = agent_id.to_string();
        blocking(move || {
            let mut locks = Vec::with_capacity(files.len());
            for file in &files {
                locks.push(scope::lock_exclusive(file)?);
            }
            let mut loaded = files
                .iter()
                .map(|file| scope::read(file, &agent_id, None))
                .collect::<Result<Vec<_>, _>>()?;
            let result = apply(&mut loaded)?;
            for file in &loaded {
                scope::write(file)?;
            }
            drop(locks);
            Ok(result)
        })
        .await
    }

    /// The files of `scope` of an agent, read.
    async fn read(&self, agent_id: &str, scope: &MemoryScope) -> Result<Vec<Loaded>, StoreError> {
        let agent_dir = self.agent_dir(agent_id)?;
        let agent_id = agent_id.to_string();
        let scope = scope.clone();
        blocking(move || match scope {
            MemoryScope::User(user) => Ok(vec![scope::read_locked(
                &ScopeFile::user(&agent_dir, &user),
                &agent_id,
                Some(&user),
            )?]),
            MemoryScope::Shared => Ok(vec![scope::read_locked(
                &ScopeFile::shared(&agent_dir),
                &agent_id,
                None,
            )?]),
            MemoryScope::All => scope::agent_files(&agent_dir)?
                .iter()
                .map(|file| scope::read_locked(file, &agent_id, None))
                .collect(),
        })
        .await
    }

    /// The file each memory of an agent is in.
    async fn locate(&self, agent_id: &str) -> Result<HashMap<String, ScopeFile>, StoreError> {
        let mut found = HashMap::new();
        for file in self.read(agent_id, &MemoryScope::All).await? {
            for record in &file.records {
                found
                    .entry(record.id.clone())
                    .or_insert_with(|| file.file.clone());
            }
        }
        Ok(found)
    }

    /// The first of `ids` that a memory of another agent has. Another agent's unreadable
    /// file is skipped (with a warning) rather than blocking every agent's writes.
    async fn taken_elsewhere(
        &self,
        agent_id: &str,
        ids: Vec<String>,
    ) -> Result<Option<String>, StoreError> {
        if ids.is_empty() {
            return Ok(None);
        }
        let agents = self.root.join("agents");
        let own = agent_id.to_string();
        blocking(move || {
            let entries = match std::fs::read_dir(&agents) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => {
                    return Err(fs_error(format!("cannot list {}", agents.display()), err));
                }
            };
            for entry in entries.flatten() {
                let Some(other) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if other == own || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let files = match scope::agent_files(&entry.path()) {
                    Ok(files) => files,
                    Err(err) => {
                        tracing::warn!(agent = %other, error = %err, "memory files not checked");
                        continue;
                    }
                };
                for file in files {
                    match scope::read_locked(&file, &other, None) {
                        Ok(loaded) => {
                            if let Some(id) = ids.iter().find(|id| loaded.position(id).is_some()) {
                                return Ok(Some(id.clone()));
                            }
                        }
                        Err(err) => {
                            tracing::warn!(agent = %other, error = %err, "memory file not checked");
                        }
                    }
                }
            }
            Ok(None)
        })
        .await
    }
}

/// Runs blocking file work on tokio's blocking threads.
async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| fs_error("a memory file task stopped", io::Error::other(err)))?
}

fn taken(id: &str) -> StoreError {
    StoreError::Clash(format!("memory id '{id}' of another agent"))
}

fn unwritable(id: &str) -> StoreError {
    fs_error(
        format!("memory id '{id}' cannot be written in a memory file"),
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty, or holds ']' or a control character",
        ),
    )
}

/// Saves `record` into `target` among `loaded`: in place when it is there, moved from the
/// file it was in (its scope changed) or appended. `created_at` of an existing one stays.
fn upsert(
    loaded: &mut [Loaded],
    target: &ScopeFile,
    mut record: MemoryRecord,
) -> Result<(), StoreError> {
    let Some(t) = loaded.iter().position(|file| &file.file == target) else {
        return Err(fs_error(
            format!("{} was not locked", target.markdown().display()),
            io::Error::other("memory file missing from its change"),
        ));
    };
    if loaded[t].foreign_to(record.user_id.as_deref()) {
        return Err(StoreError::Clash(format!(
            "memory file {} of another user",
            target.markdown().display()
        )));
    }
    if record.user_id.is_some() {
        loaded[t].owner.clone_from(&record.user_id);
    }
    let existing = loaded
        .iter()
        .enumerate()
        .find_map(|(i, file)| file.position(&record.id).map(|p| (i, p)));
    match existing {
        Some((i, p)) if i == t => {
            record.created_at = loaded[i].records[p].created_at;
            loaded[i].records[p] = record;
        }
        Some((i, p)) => {
            record.created_at = loaded[i].records.remove(p).created_at;
            loaded[t].records.push(record);
        }
        None => loaded[t].records.push(record),
    }
    Ok(())
}

fn gone(id: &str) -> StoreError {
    StoreError::Clash(format!("memory '{id}' is gone; nothing was replaced"))
}

#[async_trait]
impl AgentMemoryStore for MemoryFiles {
    async fn save_memory(&self, record: &MemoryRecord) -> Result<(), StoreError> {
        if !markdown::writable_id(&record.id) {
            return Err(unwritable(&record.id));
        }
        let agent_dir = self.agent_dir(&record.agent_id)?;
        let target = ScopeFile::of(&agent_dir, record.user_id.as_deref());
        let mut files = vec![target.clone()];
        // An update in place needs only its file; a new id (or a moved one) needs a look at
        // the agent's other files and at the other agents'.
        let scope = MemoryScope::of(record.user_id.as_deref());
        let in_target = self
            .read(&record.agent_id, &scope)
            .await?
            .iter()
            .any(|file| file.position(&record.id).is_some());
        if !in_target {
            match self.locate(&record.agent_id).await?.remove(&record.id) {
                Some(file) => files.push(file),
                None => {
                    let ids = vec![record.id.clone()];
                    if self.taken_elsewhere(&record.agent_id, ids).await?.is_some() {
                        return Err(taken(&record.id));
                    }
                }
            }
        }
        let record = record.clone();
        self.change(&record.agent_id.clone(), files, move |loaded| {
            upsert(loaded, &target, record)
        })
        .await
    }

    async fn update_memory(&self, record: &MemoryRecord) -> Result<bool, StoreError> {
        let Some(file) = self.locate(&record.agent_id).await?.remove(&record.id) else {
            return Ok(false);
        };
        let edit = record.clone();
        self.change(&record.agent_id.clone(), vec![file], move |loaded| {
            let kept = loaded
                .iter_mut()
                .find_map(|file| file.records.iter_mut().find(|r| r.id == edit.id));
            Ok(match kept {
                Some(kept) => {
                    kept.apply_edit(&edit);
                    true
                }
                None => false,
            })
        })
        .await
    }

    async fn get_memory(
        &self,
        agent_id: &str,
        id: &str,
    ) -> Result<Option<MemoryRecord>, StoreError> {
        let files = self.read(agent_id, &MemoryScope::All).await?;
        Ok(files
            .into_iter()
            .flat_map(|file| file.records)
            .find(|record| record.id == id))
    }

    async fn list_memories(
        &self,
        filter: &MemoryFilter,
    ) -> Result<(Vec<MemoryRecord>, i64), StoreError> {
        let mut found: Vec<MemoryRecord> = self
            .read(&filter.agent_id, &filter.scope)
            .await?
            .into_iter()
            .flat_map(|file| file.records)
            .filter(|record| filter.matches(record))
            .collect();
        found.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        let total = found.len() as i64;
        let page = found
            .into_iter()
            .skip(usize::try_from(filter.offset).unwrap_or(0))
            .take(usize::try_from(filter.limit).unwrap_or(0))
            .collect();
        Ok((page, total))
    }

    async fn delete_memory(&self, agent_id: &str, id: &str) -> Result<bool, StoreError> {
        // The memory may move to another scope between finding and locking its file: look
        // again a few times.
        for _ in 0..3 {
            let Some(file) = self.locate(agent_id).await?.remove(id) else {
                return Ok(false);
            };
            let target = id.to_string();
            let deleted = self
                .change(agent_id, vec![file], move |loaded| {
                    Ok(loaded.iter_mut().any(|file| match file.position(&target) {
                        Some(p) => {
                            file.records.remove(p);
                            true
                        }
                        None => false,
                    }))
                })
                .await?;
            if deleted {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn touch_memories(
        &self,
        agent_id: &str,
        ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let located = self.locate(agent_id).await?;
        let files: BTreeSet<ScopeFile> = ids
            .iter()
            .filter_map(|id| located.get(id))
            .cloned()
            .collect();
        if files.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.change(agent_id, files.into_iter().collect(), move |loaded| {
            for id in &ids {
                if let Some(record) = loaded
                    .iter_mut()
                    .find_map(|file| file.records.iter_mut().find(|r| &r.id == id))
                {
                    record.access_count += 1;
                    record.last_accessed_at = Some(at);
                }
            }
            Ok(())
        })
        .await
    }

    async fn replace_memories(
        &self,
        agent_id: &str,
        remove: &[String],
        add: &[MemoryRecord],
    ) -> Result<(), StoreError> {
        let agent_dir = self.agent_dir(agent_id)?;
        if let Some(record) = add.iter().find(|r| r.agent_id != agent_id) {
            return Err(StoreError::Clash(format!(
                "memory '{}' is of agent '{}', not '{agent_id}'; nothing was replaced",
                record.id, record.agent_id
            )));
        }
        if let Some(record) = add.iter().find(|r| !markdown::writable_id(&r.id)) {
            return Err(unwritable(&record.id));
        }
        let located = self.locate(agent_id).await?;
        let mut files = Vec::new();
        for id in remove {
            files.push(located.get(id).cloned().ok_or_else(|| gone(id))?);
        }
        let mut new_ids = Vec::new();
        let mut adds = Vec::with_capacity(add.len());
        for record in add {
            match located.get(&record.id) {
                Some(file) => files.push(file.clone()),
                None => new_ids.push(record.id.clone()),
            }
            let target = ScopeFile::of(&agent_dir, record.user_id.as_deref());
            files.push(target.clone());
            adds.push((target, record.clone()));
        }
        if let Some(id) = self.taken_elsewhere(agent_id, new_ids).await? {
            return Err(taken(&id));
        }
        let remove = remove.to_vec();
        // Every change is made on what was read; an error leaves the files unwritten.
        self.change(agent_id, files, move |loaded| {
            for id in &remove {
                let removed = loaded.iter_mut().any(|file| match file.position(id) {
                    Some(p) => {
                        file.records.remove(p);
                        true
                    }
                    None => false,
                });
                if !removed {
                    return Err(gone(id));
                }
            }
            for (target, record) in adds {
                upsert(loaded, &target, record)?;
            }
            Ok(())
        })
        .await
    }
}
