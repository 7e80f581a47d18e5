//! `agents-gateway memory list|add|forget`: an agent's memories on the workspace's store, read
//! and changed as trusted code (`--user`: on behalf of that user).

use std::process::ExitCode;

use agent_gateway::store::{MemorySource, MemoryType};
use agent_gateway::{Actor, Gateway, MemoryCreate, MemoryOwner, MemoryQuery};
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::json;

use crate::output::{Format, Table};

#[derive(Subcommand)]
pub enum MemoryAction {
    /// List an agent's memories: one user's (--user), the shared knowledge (--shared), or
    /// every scope.
    List {
        agent: String,
        /// Only this user's memories.
        #[arg(long, value_name = "USER", conflicts_with = "shared")]
        user: Option<String>,
        /// Only the agent's shared knowledge.
        #[arg(long)]
        shared: bool,
        /// semantic, episodic or procedural.
        #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
        memory_type: Option<MemoryType>,
        /// manual, extracted, compacted or api.
        #[arg(long, value_parser = parse_source)]
        source: Option<MemorySource>,
        /// Only memories whose content contains TEXT (ignoring case).
        #[arg(short = 'q', long = "query", value_name = "TEXT")]
        query: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        offset: i64,
        #[arg(short = 'f', long = "format", default_value = "table")]
        format: String,
    },
    /// Save a memory: a user's (--user), else the agent's shared knowledge.
    Add {
        agent: String,
        content: String,
        /// The user whose memory it is.
        #[arg(long, value_name = "USER", conflicts_with = "shared")]
        user: Option<String>,
        /// The agent's shared knowledge (the default without --user).
        #[arg(long)]
        shared: bool,
        /// semantic (default), episodic or procedural.
        #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
        memory_type: Option<MemoryType>,
        /// 0 to 1 (default 0.5).
        #[arg(long, value_name = "X", value_parser = parse_importance)]
        importance: Option<f64>,
        /// Always injected first and never compacted.
        #[arg(long)]
        pinned: bool,
    },
    /// Delete a memory by id.
    Forget { agent: String, id: String },
}

fn parse_type(text: &str) -> Result<MemoryType, String> {
    MemoryType::parse(text)
        .ok_or_else(|| format!("unknown type '{text}': use semantic, episodic or procedural"))
}

fn parse_source(text: &str) -> Result<MemorySource, String> {
    MemorySource::parse(text)
        .ok_or_else(|| format!("unknown source '{text}': use manual, extracted, compacted or api"))
}

fn parse_importance(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!(
            "importance must be a number from 0 to 1, not '{text}'"
        )),
    }
}

/// Runs `action` on a gateway built for a command (no background work), then shuts it down.
pub async fn memory(gateway: Gateway, action: MemoryAction) -> anyhow::Result<ExitCode> {
    let result = run(&gateway, action).await;
    gateway.shutdown().await;
    result
}

/// Trusted code, on behalf of `user` when one is named.
fn actor(user: Option<&str>) -> anyhow::Result<Actor> {
    match user {
        Some(user) if user.trim().is_empty() => Err(anyhow!("--user cannot be empty")),
        Some(user) => Ok(Actor::on_behalf_of(user)),
        None => Ok(Actor::system()),
    }
}

async fn run(gateway: &Gateway, action: MemoryAction) -> anyhow::Result<ExitCode> {
    match action {
        MemoryAction::List {
            agent,
            user,
            shared,
            memory_type,
            source,
            query,
            limit,
            offset,
            format,
        } => {
            let format = Format::parse(&format, false)?;
            let actor = actor(user.as_deref())?;
            let query = MemoryQuery {
                owner: if shared {
                    MemoryOwner::Shared
                } else {
                    MemoryOwner::Caller
                },
                memory_type,
                source,
                search: query,
                limit,
                offset,
            };
            let (memories, total) = gateway
                .memories()
                .list(&actor, &agent, &query)
                .await
                .map_err(|err| anyhow!("{err}"))?;
            if format == Format::Json {
                let page =
                    json!({"memories": memories, "total": total, "limit": limit, "offset": offset});
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(
                &[
                    "id",
                    "user",
                    "type",
                    "source",
                    "importance",
                    "pinned",
                    "content",
                ],
                "No memories found.",
            );
            for memory in &memories {
                table.row(vec![
                    json!(memory.id),
                    json!(memory.user_id.as_deref().unwrap_or("(shared)")),
                    json!(memory.memory_type.as_str()),
                    json!(memory.source.as_str()),
                    json!(memory.importance),
                    json!(memory.pinned),
                    json!(memory.content),
                ]);
            }
            table.print(format)?;
            if total > memories.len() as i64 {
                println!(
                    "{} of {total} shown (--offset and --limit page further).",
                    memories.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MemoryAction::Add {
            agent,
            content,
            user,
            shared: _,
            memory_type,
            importance,
            pinned,
        } => {
            // Without --user the system actor writes the shared knowledge.
            let actor = actor(user.as_deref())?;
            let create = MemoryCreate {
                owner: MemoryOwner::Caller,
                content,
                memory_type: memory_type.unwrap_or_default(),
                importance: importance.unwrap_or(0.5),
                pinned,
            };
            let memory = gateway
                .memories()
                .create(&actor, &agent, create)
                .await
                .map_err(|err| anyhow!("{err}"))?;
            let whose = match &memory.user_id {
                Some(user) => format!("user '{user}'"),
                None => "the shared knowledge".to_string(),
            };
            println!("Saved memory {} for {whose} of agent '{agent}'.", memory.id);
            Ok(ExitCode::SUCCESS)
        }
        MemoryAction::Forget { agent, id } => {
            gateway
                .memories()
                .delete(&Actor::system(), &agent, &id)
                .await
                .map_err(|err| anyhow!("{err}"))?;
            println!("Forgot memory {id} of agent '{agent}'.");
            Ok(ExitCode::SUCCESS)
        }
    }
}
