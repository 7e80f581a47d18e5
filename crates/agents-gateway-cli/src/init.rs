//! `agents-gateway init <name>`: a project that runs at once: on the provider whose key is
//! set, and before any key exists on a scripted model (`model.without_key`), which `serve`
//! announces with how to switch.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow};

/// The model the scaffold uses: the provider whose key is set, else Gemini (the built-in
/// default), which the scripted model stands in for until its key is set.
pub fn pick_model(env: &BTreeMap<String, String>) -> (&'static str, &'static str) {
    let has = |name: &str| env.get(name).is_some_and(|v| !v.trim().is_empty());
    if has("OPENAI_API_KEY") {
        ("openai/gpt-4o-mini", "OPENAI_API_KEY is set")
    } else if has("ANTHROPIC_API_KEY") {
        (
            "anthropic/claude-3-5-haiku-latest",
            "ANTHROPIC_API_KEY is set",
        )
    } else if has("GEMINI_API_KEY") || has("GOOGLE_API_KEY") {
        ("gemini/gemini-2.0-flash", "GEMINI_API_KEY is set")
    } else {
        (
            "gemini/gemini-2.5-flash",
            "no provider key was set: set GEMINI_API_KEY (or pick another provider's model here)",
        )
    }
}

pub fn scaffold(root: &Path, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    if root.exists() {
        return Err(anyhow!("'{}' already exists", root.display()));
    }
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("invalid project name '{}'", root.display()))?;
    let (model, reason) = pick_model(env);
    let files: Vec<(String, String)> = vec![
        (
            "workspace/gateway.yaml".into(),
            gateway_yaml(&name, model, reason),
        ),
        (
            "workspace/agents/assistant/AGENT.md".into(),
            ASSISTANT.into(),
        ),
        (
            "workspace/skills/general-tools/SKILL.md".into(),
            SKILL.into(),
        ),
        ("workspace/tools/current-time/TOOL.md".into(), TOOL.into()),
        (
            "workspace/tools/current-time/handler.py".into(),
            HANDLER.into(),
        ),
        (
            "workspace/tests/assistant.yaml".into(),
            include_str!("init_tests.yaml").into(),
        ),
        (".env.example".into(), ENV_EXAMPLE.into()),
        (
            ".gitignore".into(),
            "*.db\n*.db-shm\n*.db-wal\n.env\n".into(),
        ),
        ("README.md".into(), readme(&name)),
    ];
    for (relative, content) in files {
        let path = root.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn gateway_yaml(name: &str, model: &str, reason: &str) -> String {
    format!(
        "# Agent Gateway configuration. Every key is optional; see the project README.\n\
         server:\n  host: 127.0.0.1\n  port: 8000\n\n\
         model:\n  # {reason}\n  default: {model}\n  temperature: 0.1\n  \
         # While the default model's key is missing, agents answer from this scripted model\n  \
         # (canned answers; `serve` says so at start). Remove the line to fail instead.\n  \
         without_key: scripted/assistant\n\n\
         auth:\n  # Turn on before exposing the server: `agents-gateway keys create <name>` prints an\n  # api_keys entry to paste here (and remove `enabled: false`).\n  enabled: false\n\n\
         persistence:\n  backend: sqlite\n  url: sqlite:///{name}.db\n"
    )
}

const ASSISTANT: &str = "---
description: A helpful assistant
display_name: Assistant
skills:
  - general-tools
---
You are a helpful assistant. Answer clearly and concisely.
When the user asks about the current date or time, use the current-time tool.
";

const SKILL: &str = "---
name: general-tools
description: Everyday utilities
tools:
  - current-time
---
Use these tools when a question needs live information.
";

const TOOL: &str = "---
name: current-time
description: The current date and time in a timezone
parameters:
  timezone:
    type: string
    description: IANA timezone such as Europe/London (default UTC)
---
Returns the current time as ISO 8601.
";

const HANDLER: &str = "from datetime import datetime
from zoneinfo import ZoneInfo


def handle(arguments, context):
    zone = ZoneInfo(arguments.get(\"timezone\") or \"UTC\")
    return {\"timezone\": str(zone), \"now\": datetime.now(zone).isoformat(timespec=\"seconds\")}
";

const ENV_EXAMPLE: &str = "# Set the key of the provider your models use.
OPENAI_API_KEY=
ANTHROPIC_API_KEY=
GEMINI_API_KEY=
# Any OpenAI-compatible server (Ollama, vLLM, llama.cpp): models named openai/<model>
# OPENAI_API_BASE=http://localhost:8080/v1
# Encrypts per-user secrets and MCP credentials at rest.
AGENT_GATEWAY_SECRET_KEY=
";

fn readme(name: &str) -> String {
    format!(
        "# {name}\n\nServe the agents:\n\n```sh\nagents-gateway serve\n```\n\nTalk to them:\n\n```sh\ncurl -s localhost:8000/v1/agents/assistant/invoke -H 'content-type: application/json' -d '{{\"message\": \"What time is it in Tokyo?\"}}'\nagents-gateway chat assistant\n```\n\nAPI docs: http://localhost:8000/docs\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_provider_with_a_key() {
        let env = |k: &str| BTreeMap::from([(k.to_string(), "x".to_string())]);
        assert_eq!(
            pick_model(&env("ANTHROPIC_API_KEY")).0,
            "anthropic/claude-3-5-haiku-latest"
        );
        assert_eq!(
            pick_model(&env("GOOGLE_API_KEY")).0,
            "gemini/gemini-2.0-flash"
        );
        assert_eq!(pick_model(&BTreeMap::new()).0, "gemini/gemini-2.5-flash");
    }

    #[test]
    fn scaffold_is_a_valid_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("demo");
        scaffold(&root, &BTreeMap::new()).unwrap();
        let ws =
            agent_gateway::workspace::Workspace::load(&root.join("workspace"), &BTreeMap::new());
        let all = ws.all_diagnostics(&Default::default());
        assert!(all.is_empty(), "{all:?}");
        assert!(ws.agents.contains_key("assistant"));
        assert_eq!(ws.config.model.default, "gemini/gemini-2.5-flash");
        assert_eq!(
            ws.config.model.without_key.as_deref(),
            Some("scripted/assistant")
        );
        assert!(
            scaffold(&root, &BTreeMap::new()).is_err(),
            "existing folder must be refused"
        );
    }
}
