//! One scope's files: the markdown 0.2.13 reads, the sidecar JSON with what it cannot hold,
//! and the lock file that keeps two processes from interleaving their writes. Blocking I/O:
//! callers run it on tokio's blocking threads.
//!
//! The shared memories of an agent are `agents/<id>/MEMORY.md`; a user's are
//! `agents/<id>/memory/<user>.md`. The sidecar and the lock of a markdown file are in the
//! `.memory-meta` folder next to it, under the same stem (`.memory-meta/MEMORY.json`,
//! `memory/.memory-meta/<user>.json`; so a user named `MEMORY` cannot collide with the
//! shared scope).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::markdown;
use crate::error::StoreError;
use crate::records::{MemoryRecord, MemorySource, MemoryType};

/// The largest markdown or sidecar file read (a guard: the core bounds memories' counts and
/// lengths far below it).
pub(super) const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// A file system error about `what`, its cause kept.
pub(super) fn fs_error(what: impl Into<String>, source: io::Error) -> StoreError {
    StoreError::Filesystem {
        what: what.into(),
        source: Arc::new(source),
    }
}

/// The file name stem of `user`'s memory file, as 0.2.13 names it: the user id itself when it
/// is a safe file name (1 to 100 characters, letters, digits, `-`, `_`, `.` and `@`, starting
/// with a letter or digit), else `user-` and the first 16 hex characters of its SHA-256 (the
/// sidecar keeps the real id).
pub(super) fn user_stem(user: &str) -> String {
    let safe = (1..=100).contains(&user.len())
        && user.starts_with(|c: char| c.is_ascii_alphanumeric())
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if safe {
        user.to_string()
    } else {
        format!(
            "user-{}",
            &hex::encode(Sha256::digest(user.as_bytes()))[..16]
        )
    }
}

/// The files of one scope of one agent (identified by the markdown's folder and stem).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct ScopeFile {
    /// The folder of the markdown file.
    dir: PathBuf,
    stem: String,
    /// The agent's shared scope (`MEMORY.md`), not a user's.
    shared: bool,
}

impl ScopeFile {
    pub(super) fn shared(agent_dir: &Path) -> Self {
        Self {
            dir: agent_dir.to_path_buf(),
            stem: "MEMORY".into(),
            shared: true,
        }
    }

    pub(super) fn user(agent_dir: &Path, user: &str) -> Self {
        Self::user_stem(agent_dir, user_stem(user))
    }

    fn user_stem(agent_dir: &Path, stem: String) -> Self {
        Self {
            dir: agent_dir.join("memory"),
            stem,
            shared: false,
        }
    }

    /// The scope of a memory with this `user_id`.
    pub(super) fn of(agent_dir: &Path, user_id: Option<&str>) -> Self {
        match user_id {
            Some(user) => Self::user(agent_dir, user),
            None => Self::shared(agent_dir),
        }
    }

    pub(super) fn markdown(&self) -> PathBuf {
        self.dir.join(format!("{}.md", self.stem))
    }

    fn meta_dir(&self) -> PathBuf {
        self.dir.join(".memory-meta")
    }

    fn sidecar(&self) -> PathBuf {
        self.meta_dir().join(format!("{}.json", self.stem))
    }

    fn lock_file(&self) -> PathBuf {
        self.meta_dir().join(format!("{}.lock", self.stem))
    }
}

/// Every scope file of the agent whose folder is `agent_dir`: `MEMORY.md` and each `.md` file
/// of `memory/`, sorted.
pub(super) fn agent_files(agent_dir: &Path) -> Result<Vec<ScopeFile>, StoreError> {
    let mut files = vec![ScopeFile::shared(agent_dir)];
    let users = agent_dir.join("memory");
    let entries = match std::fs::read_dir(&users) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(err) => return Err(fs_error(format!("cannot list {}", users.display()), err)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| fs_error(format!("cannot list {}", users.display()), e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".md")) else {
            continue;
        };
        if stem.is_empty() || stem.starts_with('.') {
            continue;
        }
        let is_file = entry
            .file_type()
            .map_err(|e| fs_error(format!("cannot list {}", users.display()), e))?
            .is_file();
        if is_file {
            files.push(ScopeFile::user_stem(agent_dir, stem.to_string()));
        }
    }
    files.sort();
    Ok(files)
}

/// What the sidecar keeps of one memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Meta {
    importance: Option<f64>,
    source: Option<MemorySource>,
    pinned: bool,
    access_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_accessed_at: Option<DateTime<Utc>>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<Vec<f32>>,
    /// The SHA-256 of the content the metadata was written with: an embedding of content
    /// edited by hand since is dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    content_sha256: Option<String>,
}

/// The sidecar of one scope file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Sidecar {
    /// The user whose file it is (the real id, also for a hashed file name).
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    /// By memory id.
    memories: BTreeMap<String, Meta>,
}

fn content_sha256(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// A scope file as read: its memories in file order.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) file: ScopeFile,
    /// The user the sidecar says the file belongs to (`None`: no sidecar, or the shared scope).
    pub(super) owner: Option<String>,
    pub(super) records: Vec<MemoryRecord>,
    markdown: Option<Vec<u8>>,
    /// What the markdown said as read: (id, content, type) per memory, in order. While the
    /// records still say the same, the markdown is left exactly as it is (prose, headings
    /// and line endings a person wrote there stay).
    read_as: Vec<(String, String, MemoryType)>,
    sidecar: Option<Vec<u8>>,
}

impl Loaded {
    /// Whether the file belongs to another user than `user` (two user ids with one file
    /// name: a hashed name taken as an id, or a case-insensitive file system).
    pub(super) fn foreign_to(&self, user: Option<&str>) -> bool {
        matches!((&self.owner, user), (Some(owner), Some(user)) if owner != user)
    }

    /// The user id of this file's memories.
    pub(super) fn user_id(&self, expected: Option<&str>) -> Option<String> {
        if self.file.shared {
            return None;
        }
        Some(
            self.owner
                .as_deref()
                .or(expected)
                .unwrap_or(&self.file.stem)
                .to_string(),
        )
    }

    /// Index of the memory `id`.
    pub(super) fn position(&self, id: &str) -> Option<usize> {
        self.records.iter().position(|r| r.id == id)
    }
}

/// The bytes of a file and when it was last modified.
struct Contents {
    bytes: Vec<u8>,
    modified: DateTime<Utc>,
}

/// The contents of `path`, `None` when it does not exist, refused above [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> Result<Option<Contents>, StoreError> {
    let what = || format!("cannot read {}", path.display());
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(fs_error(what(), err)),
    };
    let metadata = file.metadata().map_err(|e| fs_error(what(), e))?;
    let too_large = || {
        fs_error(
            format!(
                "{} is larger than {} MiB; not read",
                path.display(),
                MAX_FILE_BYTES / 1024 / 1024
            ),
            io::Error::new(io::ErrorKind::FileTooLarge, "memory file too large"),
        )
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fs_error(what(), e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let modified = metadata
        .modified()
        .map(DateTime::<Utc>::from)
        .map_err(|e| fs_error(what(), e))?;
    Ok(Some(Contents { bytes, modified }))
}

/// Reads a scope file. `expected` is the user asked for, whose id the memories get when the
/// file has no sidecar naming its user; `None` when the file was found by listing (then its
/// stem is the user id).
pub(super) fn read(
    file: &ScopeFile,
    agent_id: &str,
    expected: Option<&str>,
) -> Result<Loaded, StoreError> {
    let sidecar_bytes = read_bounded(&file.sidecar())?.map(|c| c.bytes);
    let sidecar: Sidecar = match &sidecar_bytes {
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
            fs_error(
                format!("unreadable memory metadata {}", file.sidecar().display()),
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?,
        None => Sidecar::default(),
    };
    let mut loaded = Loaded {
        file: file.clone(),
        owner: if file.shared { None } else { sidecar.user_id },
        records: Vec::new(),
        markdown: None,
        read_as: Vec::new(),
        sidecar: sidecar_bytes,
    };
    let Some(Contents { bytes, modified }) = read_bounded(&file.markdown())? else {
        return Ok(loaded);
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        fs_error(
            format!("{} is not UTF-8", file.markdown().display()),
            io::Error::new(io::ErrorKind::InvalidData, e),
        )
    })?;
    let user_id = loaded.user_id(expected);
    let items = markdown::parse(text);
    let ids = markdown::ids(&items, agent_id, user_id.as_deref());
    loaded.records = items
        .into_iter()
        .zip(ids)
        .map(|(item, id)| {
            let meta = sidecar.memories.get(&id).cloned().unwrap_or_default();
            let same_content = meta
                .content_sha256
                .as_deref()
                .is_none_or(|sha| sha == content_sha256(&item.content));
            MemoryRecord {
                id,
                agent_id: agent_id.to_string(),
                user_id: user_id.clone(),
                memory_type: item.memory_type,
                source: meta.source.unwrap_or_default(),
                importance: meta.importance.unwrap_or(0.5),
                pinned: meta.pinned,
                access_count: meta.access_count,
                last_accessed_at: meta.last_accessed_at,
                created_at: meta.created_at.unwrap_or(modified),
                updated_at: meta.updated_at.unwrap_or(modified),
                embedding: meta.embedding.filter(|_| same_content),
                content: item.content,
            }
        })
        .collect();
    loaded.read_as = rows_of(&loaded.records);
    loaded.markdown = Some(bytes);
    Ok(loaded)
}

/// Writes `bytes` to `path` through a temporary file in the same folder renamed over it: a
/// reader sees the old file or the new one, never half of one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let what = || format!("cannot write {}", path.display());
    let dir = path
        .parent()
        .ok_or_else(|| fs_error(what(), io::Error::from(io::ErrorKind::InvalidInput)))?;
    std::fs::create_dir_all(dir).map_err(|e| fs_error(what(), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = File::create_new(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temp, path));
    if let Err(err) = renamed {
        let _ = std::fs::remove_file(&temp);
        return Err(fs_error(what(), err));
    }
    Ok(())
}

/// Writes what changed of `loaded`: the sidecar first, then the markdown (a reader between
/// the two sees the new metadata with the old markdown, whose memories keep theirs).
pub(super) fn write(loaded: &Loaded) -> Result<(), StoreError> {
    if loaded.markdown.is_none() && loaded.records.is_empty() {
        return Ok(()); // nothing was there and nothing is: create no file
    }
    let rows: Vec<_> = loaded
        .records
        .iter()
        .map(|r| (r.id.as_str(), r.content.as_str(), r.memory_type))
        .collect();
    let unchanged = loaded.markdown.is_some() && rows_of(&loaded.records) == loaded.read_as;
    let sidecar = Sidecar {
        user_id: loaded.user_id(None),
        memories: loaded
            .records
            .iter()
            .map(|r| {
                let meta = Meta {
                    importance: Some(r.importance),
                    source: Some(r.source),
                    pinned: r.pinned,
                    access_count: r.access_count,
                    last_accessed_at: r.last_accessed_at,
                    created_at: Some(r.created_at),
                    updated_at: Some(r.updated_at),
                    embedding: r.embedding.clone(),
                    content_sha256: Some(content_sha256(&r.content)),
                };
                (r.id.clone(), meta)
            })
            .collect(),
    };
    let mut sidecar_bytes = serde_json::to_vec_pretty(&sidecar).map_err(|e| {
        fs_error(
            format!("cannot write {}", loaded.file.sidecar().display()),
            io::Error::other(e),
        )
    })?;
    sidecar_bytes.push(b'\n');
    if loaded.sidecar.as_deref() != Some(sidecar_bytes.as_slice()) {
        write_atomic(&loaded.file.sidecar(), &sidecar_bytes)?;
    }
    if !unchanged {
        let markdown = markdown::render(&rows);
        if loaded.markdown.as_deref() != Some(markdown.as_bytes()) {
            write_atomic(&loaded.file.markdown(), markdown.as_bytes())?;
        }
    }
    Ok(())
}

/// (id, content, type) of each record, in order: what the markdown holds of them.
fn rows_of(records: &[MemoryRecord]) -> Vec<(String, String, MemoryType)> {
    records
        .iter()
        .map(|r| (r.id.clone(), r.content.clone(), r.memory_type))
        .collect()
}

/// Takes the exclusive lock of `file` between processes (blocking until it is free); held
/// until the returned handle is dropped.
pub(super) fn lock_exclusive(file: &ScopeFile) -> Result<File, StoreError> {
    let path = file.lock_file();
    let what = || format!("cannot lock {}", path.display());
    std::fs::create_dir_all(file.meta_dir()).map_err(|e| fs_error(what(), e))?;
    let handle = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| fs_error(what(), e))?;
    handle.lock().map_err(|e| fs_error(what(), e))?;
    Ok(handle)
}

/// Takes the shared lock of `file` when its lock file exists (a reader creates nothing; a
/// file never written by this backend has no writer to wait for). Waits for a writer.
pub(super) fn lock_shared(file: &ScopeFile) -> Result<Option<File>, StoreError> {
    let path = file.lock_file();
    let what = || format!("cannot lock {}", path.display());
    let handle = match File::open(&path) {
        Ok(handle) => handle,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(fs_error(what(), err)),
    };
    handle.lock_shared().map_err(|e| fs_error(what(), e))?;
    Ok(Some(handle))
}

/// Reads a scope file under its shared lock.
pub(super) fn read_locked(
    file: &ScopeFile,
    agent_id: &str,
    expected: Option<&str>,
) -> Result<Loaded, StoreError> {
    let _lock = lock_shared(file)?;
    read(file, agent_id, expected)
}
