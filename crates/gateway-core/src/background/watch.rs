//! Watching the workspace folder (`GatewayBuilder::watch`, CLI `serve --reload`): file
//! events, debounced (~300 ms without another), that touch what a generation is built from
//! reload the workspace through the same path as `POST /v1/reload` — a valid change swaps
//! the generation, a broken one keeps the running one and is reported. The watcher stops
//! with the background work, at shutdown.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify_debouncer_full::notify::{EventKind, RecursiveMode, event::ModifyKind};
use notify_debouncer_full::{DebounceEventResult, DebouncedEvent, new_debouncer};
use tokio_util::sync::CancellationToken;

use crate::error::GatewayError;
use crate::state::GatewayState;

/// Quiet time after the last file event before a reload.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Starts watching the workspace of `state`; fails when the folder cannot be watched.
pub(crate) fn start(state: &Arc<GatewayState>) -> Result<(), GatewayError> {
    // Events name paths the way the watched folder was named: watch it absolute.
    let root = std::fs::canonicalize(&state.workspace_path)
        .unwrap_or_else(|_| state.workspace_path.clone());
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<PathBuf>>(16);
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        match result {
            Ok(events) => {
                let paths: Vec<PathBuf> = events
                    .iter()
                    .filter(|event| changes_content(event))
                    .flat_map(|event| event.paths.iter().cloned())
                    .collect();
                // A full channel already has a reload coming: nothing is lost.
                if !paths.is_empty() {
                    let _ = tx.try_send(paths);
                }
            }
            Err(errors) => {
                for err in errors {
                    tracing::warn!(error = %err, "workspace watcher error");
                }
            }
        }
    })
    .map_err(|err| GatewayError::Internal(format!("cannot watch the workspace: {err}")))?;
    debouncer
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|err| GatewayError::Internal(format!("cannot watch {}: {err}", root.display())))?;
    let ignored = ignored_files(state, &root);
    tracing::info!(workspace = %root.display(), "watching the workspace for changes");
    let stop = state.background.clone();
    tokio::spawn(watch_loop(
        Arc::downgrade(state),
        root,
        ignored,
        rx,
        stop,
        Box::new(debouncer),
    ));
    Ok(())
}

/// Reloads after each batch of relevant changes until `stop`; holds the debouncer (dropping
/// it stops the watching thread).
async fn watch_loop(
    state: Weak<GatewayState>,
    root: PathBuf,
    ignored: Vec<PathBuf>,
    mut rx: tokio::sync::mpsc::Receiver<Vec<PathBuf>>,
    stop: CancellationToken,
    debouncer: Box<dyn Send>,
) {
    loop {
        let paths = tokio::select! {
            () = stop.cancelled() => break,
            paths = rx.recv() => match paths {
                Some(paths) => paths,
                None => break,
            },
        };
        let relevant: Vec<&PathBuf> = paths
            .iter()
            .filter(|path| relevant(&root, &ignored, path))
            .collect();
        let Some(first) = relevant.first() else {
            continue;
        };
        let Some(state) = state.upgrade() else {
            break;
        };
        tracing::info!(
            changed = %first.strip_prefix(&root).unwrap_or(first).display(),
            files = relevant.len(),
            "workspace changed; reloading"
        );
        // Failures are logged and kept for the health answer by the reload itself.
        let _ = crate::operations::admin::reload(&state).await;
    }
    drop(debouncer);
}

/// Whether an event may change a file's content or existence (reads and metadata changes do
/// not: loading the workspace reads every file).
fn changes_content(event: &DebouncedEvent) -> bool {
    match event.kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// Files the gateway writes itself inside the workspace: the SQLite database.
fn ignored_files(state: &GatewayState, root: &Path) -> Vec<PathBuf> {
    let generation = state.generation();
    gateway_workspace::config::sqlite_path(&generation.config().persistence.url, root)
        .into_iter()
        .collect()
}

/// Whether a changed path is part of what a generation is built from: anything in the
/// workspace but its test cases, hidden files and folders, databases, agents' memory files,
/// caches and editors' temporary files.
fn relevant(root: &Path, ignored: &[PathBuf], path: &Path) -> bool {
    if ignored.iter().any(|file| path.starts_with(file)) {
        return false;
    }
    let Ok(inside) = path.strip_prefix(root) else {
        return false;
    };
    let parts: Vec<&str> = inside
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => part.to_str(),
            _ => None,
        })
        .collect();
    let Some(name) = parts.last() else {
        return false;
    };
    // Agents' memory files (`agents/<id>/memory/<user>.md`) change with every saved memory.
    let agent_memory = parts.len() >= 3 && parts[0] == "agents" && parts[2] == "memory";
    if agent_memory
        || matches!(parts.first(), Some(&"tests"))
        || parts
            .iter()
            .any(|p| p.starts_with('.') || *p == "__pycache__" || *p == "node_modules")
    {
        return false;
    }
    let temporary = name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name.ends_with(".pyc")
        || name.chars().all(|c| c.is_ascii_digit());
    let database = [
        ".db",
        ".db-wal",
        ".db-shm",
        ".db-journal",
        ".sqlite",
        ".sqlite3",
    ]
    .iter()
    .any(|ext| name.ends_with(ext));
    let memory = *name == "MEMORY.md" || name.ends_with(".memory-meta");
    !(temporary || database || memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workspace_sources_trigger_a_reload() {
        let root = Path::new("/ws");
        let db = vec![PathBuf::from("/ws/state/gateway.db")];
        let yes = [
            "/ws/gateway.yaml",
            "/ws/agents/a/AGENT.md",
            "/ws/agents/a/context/notes.txt",
            "/ws/tools/t/handler.py",
            "/ws/tools/t/handler",
            "/ws/skills/s/SKILL.md",
            "/ws/replies/x.yaml",
        ];
        for path in yes {
            assert!(relevant(root, &db, Path::new(path)), "{path}");
        }
        let no = [
            "/ws/tests/a.yaml",
            "/ws/state/gateway.db",
            "/ws/state/gateway.db-wal",
            "/ws/gateway.db-shm",
            "/ws/agents/a/MEMORY.md",
            "/ws/agents/a/memory/alice.md",
            "/ws/agents/a/.memory-meta/MEMORY.json",
            "/ws/agents/a/.AGENT.md.swp",
            "/ws/.git/index",
            "/ws/tools/t/__pycache__/handler.cpython-312.pyc",
            "/ws/agents/a/4913",
            "/elsewhere/x.md",
        ];
        for path in no {
            assert!(!relevant(root, &db, Path::new(path)), "{path}");
        }
    }
}
