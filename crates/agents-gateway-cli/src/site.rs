//! `agents-gateway site`: look at and call agentgate sites.

use agentgate::client::AgentClient;
use agentgate::protocol::Orchestration;
use anyhow::anyhow;
use serde_json::{Value, json};

use crate::output::{Format, Table};

/// Credentials for the site (flags, else `AGENTGATE_API_KEY` / `AGENTGATE_BEARER_TOKEN`).
pub struct Credentials {
    pub api_key: Option<String>,
    pub bearer_token: Option<String>,
}

fn client(credentials: &Credentials) -> anyhow::Result<AgentClient> {
    let mut builder =
        AgentClient::builder().agent_id(concat!("agents-gateway-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(key) = &credentials.api_key {
        builder = builder.api_key(key);
    }
    if let Some(token) = &credentials.bearer_token {
        builder = builder.bearer_token(token);
    }
    builder.build().map_err(|err| anyhow!("{err}"))
}

/// Names of the required properties of a schema, then the optional ones marked `?`.
fn parameters(schema: &Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema["properties"]
        .as_object()
        .map(|props| {
            props
                .keys()
                .map(|k| {
                    if required.contains(&k.as_str()) {
                        k.clone()
                    } else {
                        format!("{k}?")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

pub async fn discover(url: &str, format: Format, credentials: &Credentials) -> anyhow::Result<()> {
    let site = client(credentials)?
        .discover(url)
        .await
        .map_err(|err| anyhow!("{err}"))?;
    let manifest = site.manifest();
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(manifest)?);
        return Ok(());
    }
    let auth = match manifest.auth.header.as_deref() {
        Some(header) => format!("{} ({header})", manifest.auth.kind),
        None => manifest.auth.kind.clone(),
    };
    println!(
        "{} {} — {}",
        manifest.name, manifest.version, manifest.description
    );
    println!("auth: {auth}");
    println!();
    let mut intents = Table::new(&["intent", "parameters", "description"], "No intents.");
    for intent in &manifest.intents {
        intents.row(vec![
            json!(intent.name),
            json!(parameters(&intent.input_schema)),
            json!(intent.description),
        ]);
    }
    intents.print(format)?;
    println!();
    let mut flows = Table::new(
        &["flow", "orchestration", "steps", "description"],
        "No flows.",
    );
    for flow in &manifest.flows {
        let steps: Vec<String> = flow
            .steps
            .iter()
            .map(|s| {
                let next = if s.next_steps.is_empty() {
                    String::new()
                } else {
                    format!(" → {}", s.next_steps.join("|"))
                };
                format!("{}({}){next}", s.name, parameters(&s.input_schema))
            })
            .collect();
        let orchestration = match flow.orchestration {
            Orchestration::Server => "server",
            Orchestration::Client => "client",
        };
        flows.row(vec![
            json!(flow.name),
            json!(orchestration),
            json!(steps.join("; ")),
            json!(flow.description),
        ]);
    }
    flows.print(format)
}

pub async fn call(
    url: &str,
    intent: &str,
    arguments: &str,
    credentials: &Credentials,
) -> anyhow::Result<()> {
    let arguments: Value = serde_json::from_str(arguments)
        .map_err(|err| anyhow!("--json is not valid JSON: {err}"))?;
    if !arguments.is_object() {
        return Err(anyhow!("--json must be a JSON object of named arguments"));
    }
    let site = client(credentials)?
        .discover(url)
        .await
        .map_err(|err| anyhow!("{err}"))?;
    let result = site
        .call_intent(intent, arguments)
        .await
        .map_err(|err| anyhow!("{err}"))?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
