//! `agents-gateway`: scaffold, check, serve and talk to a workspace of agents.

mod init;
mod memory;
mod output;
mod site;
mod testing;

// The gateway allocates many short-lived values per request; mimalloc serves them faster
// than the system allocator (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::{Arc, Mutex};

use agent_gateway::engine::{EngineEvent, ExecutionStatus};
use agent_gateway::workspace::{ExternalNames, GatewayConfig, Workspace};
use agent_gateway::{Actor, ApprovalDecision, Gateway, RunEvent, RunRequest, Started};
use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::output::{Format, Table};

#[derive(Parser)]
#[command(
    name = "agents-gateway",
    version,
    about = "Serve a folder of markdown agents as an API",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct WorkspaceArg {
    /// The workspace folder.
    #[arg(short = 'w', long, default_value = "./workspace", global = true)]
    workspace: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new project with a working workspace.
    Init {
        /// Folder to create.
        name: String,
    },
    /// Start the HTTP server.
    Serve {
        #[command(flatten)]
        ws: WorkspaceArg,
        /// Address to listen on (default: server.host from gateway.yaml, else 0.0.0.0).
        #[arg(long)]
        host: Option<String>,
        /// Port to listen on (default: server.port from gateway.yaml, else 8000).
        #[arg(short, long)]
        port: Option<u16>,
        /// Watch the workspace and reload it on every change (a broken change keeps the
        /// running agents and is reported on /v1/health); also allows POST /v1/reload.
        #[arg(long)]
        reload: bool,
        /// Run queue workers (and the scheduler) without the HTTP API.
        #[arg(long)]
        worker_only: bool,
    },
    /// Run an agent once and print its answer.
    Invoke {
        #[command(flatten)]
        ws: WorkspaceArg,
        agent: String,
        message: String,
        /// Structured input (a JSON object).
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        #[arg(short = 'f', long = "format", default_value = "table")]
        format: String,
        /// Same as `-f json`.
        #[arg(long)]
        json: bool,
        /// Print the answer as it is written (with `-f json`: one JSON event per line).
        #[arg(long)]
        stream: bool,
    },
    /// Chat with an agent in the terminal (answers stream as they are written).
    Chat {
        #[command(flatten)]
        ws: WorkspaceArg,
        agent: String,
    },
    /// List the agents.
    Agents {
        #[command(flatten)]
        ws: WorkspaceArg,
        #[arg(short = 'f', long = "format", default_value = "table")]
        format: String,
    },
    /// List the skills.
    Skills {
        #[command(flatten)]
        ws: WorkspaceArg,
        #[arg(short = 'f', long = "format", default_value = "table")]
        format: String,
    },
    /// List the schedules: those of AGENT.md (with runtime edits) and admin ones.
    Schedules {
        #[command(flatten)]
        ws: WorkspaceArg,
        #[arg(short = 'f', long = "format", default_value = "table")]
        format: String,
    },
    /// Run the workspace's test cases (tests/*.yaml): exit 0 when all pass, 1 when one
    /// fails, 2 when the test files have errors.
    Test {
        #[command(flatten)]
        ws: WorkspaceArg,
        /// Run only the cases whose `<file>::<case>` contains PATTERN (ignoring case).
        #[arg(short = 'k', value_name = "PATTERN")]
        filter: Option<String>,
        /// Run every case against this model (over the cases' and files' own).
        #[arg(long, value_name = "MODEL")]
        model: Option<String>,
        /// Cases run at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
        /// Also write the results as JUnit XML to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Validate the workspace and report every problem with its file and line.
    Check {
        #[command(flatten)]
        ws: WorkspaceArg,
    },
    /// Discover and call agentgate sites.
    Site {
        #[command(subcommand)]
        action: SiteAction,
    },
    /// List, add and forget an agent's memories (as trusted code, on the workspace's store).
    Memory {
        #[command(flatten)]
        ws: WorkspaceArg,
        #[command(subcommand)]
        action: memory::MemoryAction,
    },
    /// Manage the database schema (persistence.url of the workspace).
    Db {
        #[command(flatten)]
        ws: WorkspaceArg,
        #[command(subcommand)]
        action: DbAction,
    },
    /// Create API keys for `auth.api_keys`.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Generate a key; print it once and the config line that stores only its hash.
    Create {
        /// The identity of its holder (the user id of its requests).
        name: String,
        /// Comma-separated scopes (default: every scope).
        #[arg(long, default_value = "*")]
        scopes: String,
    },
    /// Print the key_sha256 of an existing key (read from standard input).
    Hash,
}

#[derive(clap::Args)]
struct SiteAuth {
    /// Key for sites with api_key auth.
    #[arg(long, env = "AGENTGATE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Token for sites with bearer auth.
    #[arg(long, env = "AGENTGATE_BEARER_TOKEN", hide_env_values = true)]
    bearer_token: Option<String>,
}

#[derive(Subcommand)]
enum SiteAction {
    /// Print a site's intents and flows.
    Discover {
        url: String,
        #[arg(short = 'f', long = "format", default_value = "table")]
        format: String,
        #[command(flatten)]
        auth: SiteAuth,
    },
    /// Call an intent and print its result.
    Call {
        url: String,
        intent: String,
        /// Named arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        json: String,
        #[command(flatten)]
        auth: SiteAuth,
    },
}

#[derive(Subcommand)]
enum DbAction {
    /// Apply migrations up to VERSION (default: the latest).
    Upgrade { version: Option<i64> },
    /// Revert migrations down to VERSION (default: one step).
    Downgrade { version: Option<i64> },
    /// Print the current schema version.
    Current,
    /// List every migration and whether it is applied.
    History,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let ran = runtime.block_on(async {
        let telemetry = match install_telemetry(&cli.command) {
            Ok(telemetry) => telemetry,
            Err(err) => return Err(anyhow!("{err}")),
        };
        let ran = run(cli.command).await;
        telemetry.shutdown().await;
        ran
    });
    match ran {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error as `log:` of the workspace's `gateway.yaml` says (text or one JSON
/// object per line; the level from `RUST_LOG` when set, else `log.level`), and exports traces
/// as `telemetry:` says. Every line written while handling a request or running an execution
/// carries its `request_id` / `execution_id` (and `trace_id` when traces are exported).
fn install_telemetry(
    command: &Command,
) -> Result<agent_gateway::telemetry::Telemetry, agent_gateway::telemetry::TelemetryError> {
    let config = command
        .workspace()
        .and_then(|path| GatewayConfig::load(path, &GatewayConfig::process_env()).config)
        .unwrap_or_default();
    agent_gateway::telemetry::Telemetry::install(&config.telemetry, &config.log)
}

impl Command {
    /// The workspace folder a command works on.
    fn workspace(&self) -> Option<&std::path::Path> {
        match self {
            Command::Serve { ws, .. }
            | Command::Invoke { ws, .. }
            | Command::Chat { ws, .. }
            | Command::Agents { ws, .. }
            | Command::Skills { ws, .. }
            | Command::Schedules { ws, .. }
            | Command::Test { ws, .. }
            | Command::Check { ws }
            | Command::Memory { ws, .. }
            | Command::Db { ws, .. } => Some(&ws.workspace),
            Command::Init { .. }
            | Command::Site { .. }
            | Command::Keys { .. }
            | Command::Version => None,
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Version => {
            println!("agents-gateway {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { name } => {
            let env = GatewayConfig::process_env();
            init::scaffold(std::path::Path::new(&name), &env)?;
            println!("Created project '{name}'.");
            println!("Next: cd {name} && agents-gateway serve");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { ws } => Ok(check(&ws.workspace)),
        Command::Test {
            ws,
            filter,
            model,
            jobs,
            junit,
        } => Ok(testing::test(testing::TestArgs {
            workspace: ws.workspace,
            filter,
            model,
            jobs: usize::from(jobs),
            junit,
        })
        .await),
        Command::Serve {
            ws,
            host,
            port,
            reload,
            worker_only,
        } => {
            if worker_only {
                work(&ws.workspace).await
            } else {
                serve(&ws.workspace, host, port, reload).await
            }
        }
        Command::Invoke {
            ws,
            agent,
            message,
            input,
            format,
            json,
            stream,
        } => {
            let format = if json {
                Format::Json
            } else {
                Format::parse(&format, false)?
            };
            let asked = Invocation {
                agent: &agent,
                message: &message,
                input: input.as_deref(),
                format,
                stream,
            };
            invoke(&ws.workspace, asked).await
        }
        Command::Chat { ws, agent } => chat(&ws.workspace, &agent).await,
        Command::Db { ws, action } => db(&ws.workspace, action).await,
        Command::Memory { ws, action } => {
            let gateway = build_gateway(&ws.workspace, false, Lifetime::Command).await?;
            memory::memory(gateway, action).await
        }
        Command::Keys { action } => keys(action),
        Command::Site { action } => {
            match action {
                SiteAction::Discover { url, format, auth } => {
                    let credentials = site::Credentials {
                        api_key: auth.api_key,
                        bearer_token: auth.bearer_token,
                    };
                    site::discover(&url, Format::parse(&format, false)?, &credentials).await?;
                }
                SiteAction::Call {
                    url,
                    intent,
                    json,
                    auth,
                } => {
                    let credentials = site::Credentials {
                        api_key: auth.api_key,
                        bearer_token: auth.bearer_token,
                    };
                    site::call(&url, &intent, &json, &credentials).await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Agents { ws, format } => list_agents(&ws.workspace, Format::parse(&format, true)?),
        Command::Skills { ws, format } => list_skills(&ws.workspace, Format::parse(&format, true)?),
        Command::Schedules { ws, format } => {
            list_schedules(&ws.workspace, Format::parse(&format, true)?).await
        }
    }
}

fn require_workspace(path: &std::path::Path) -> anyhow::Result<()> {
    if path.is_dir() {
        Ok(())
    } else {
        Err(anyhow!(
            "workspace folder '{}' not found (create one with `agents-gateway init <name>`, or pass --workspace)",
            path.display()
        ))
    }
}

/// How long a gateway built here lives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lifetime {
    /// `serve` and `serve --worker-only`: background work on (schedules, queue workers).
    Server,
    /// A command that runs one thing and exits: no background work, so it never takes a
    /// queued job or fires a schedule it would abandon on exit.
    Command,
}

async fn build_gateway(
    path: &std::path::Path,
    reload: bool,
    lifetime: Lifetime,
) -> anyhow::Result<Gateway> {
    require_workspace(path)?;
    Gateway::builder(path)
        .reload(reload)
        .watch(reload && lifetime == Lifetime::Server)
        .background(lifetime == Lifetime::Server)
        .build()
        .await
        .map_err(|err| anyhow!("{err}"))
}

async fn serve(
    path: &std::path::Path,
    host: Option<String>,
    port: Option<u16>,
    reload: bool,
) -> anyhow::Result<ExitCode> {
    let gateway = build_gateway(path, reload, Lifetime::Server).await?;
    let config = gateway.config();
    let host = host.unwrap_or(config.server.host);
    let port = port.unwrap_or(config.server.port);
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .with_context(|| format!("invalid listen address {host}:{port}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("Starting agent-gateway on {host}:{port}");
    let health = gateway.health();
    println!(
        "Workspace {}: {} agents, {} skills, {} tools ({})",
        path.display(),
        health.agent_count,
        health.skill_count,
        health.tool_count,
        health.status
    );
    if let Some(notice) = gateway.generation().stand_in_notice() {
        eprintln!("\n!! {notice}\n");
    }
    agent_gateway::serve(gateway, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Queue workers only: no API, only `/metrics` on `metrics.listen` when set (a worker's
/// queue and executions are scraped like a server's). Stops on SIGINT/SIGTERM after the jobs
/// in hand finish.
async fn work(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let gateway = build_gateway(path, false, Lifetime::Server).await?;
    let config = gateway.config();
    // Bound before the startup hooks, as `serve` does: an address taken stops the start.
    let metrics = agent_gateway::serve_metrics(&gateway).await?;
    println!(
        "Worker started: {} workers on the {:?} queue",
        config.queue.workers, config.queue.backend
    );
    if let (Some(_), Some(address)) = (&metrics, &config.metrics.listen) {
        println!("Serving /metrics on {address}");
    }
    gateway.startup().await;
    shutdown_signal().await;
    gateway.shutdown().await;
    // Scrapable until the jobs in hand are done.
    drop(metrics);
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    eprintln!("Shutting down...");
}

/// What `invoke` was asked.
struct Invocation<'a> {
    agent: &'a str,
    message: &'a str,
    input: Option<&'a str>,
    format: Format,
    stream: bool,
}

async fn invoke(path: &std::path::Path, asked: Invocation<'_>) -> anyhow::Result<ExitCode> {
    let Invocation {
        agent,
        message,
        input,
        format,
        stream,
    } = asked;
    let input = match input {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(anyhow!("--input must be a JSON object")),
        },
    };
    let gateway = build_gateway(path, false, Lifetime::Command).await?;
    let actor = Actor::system();
    let started = gateway
        .start(&actor, RunRequest::invoke(agent, message).input(input))
        .await;
    let ticket = match started {
        Ok(Started::Running(ticket)) => ticket,
        Ok(Started::Queued(queued)) => {
            gateway.shutdown().await;
            return Err(anyhow!("execution {} was queued", queued.execution_id));
        }
        Err(err) => {
            gateway.shutdown().await;
            return Err(anyhow!("{err}"));
        }
    };
    let execution_id = ticket.execution_id().to_string();
    // Ctrl-C cancels the run, which then ends (recorded `cancelled`) before the command exits.
    let json = matches!(format, Format::Json);
    let run = async {
        if stream {
            print_stream(ticket.stream(), json).await
        } else {
            Ok(ticket.run().await)
        }
    };
    tokio::pin!(run);
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("Cancelling {execution_id}...");
                if let Err(err) = gateway.executions().cancel(&actor, &execution_id).await {
                    eprintln!("Could not cancel: {err}");
                }
            }
        }
    };
    gateway.shutdown().await;
    let result = result?;
    let ok = result.status == ExecutionStatus::Completed;
    match format {
        Format::Json if stream => {
            let done = json!({
                "event": "done",
                "status": result.stop_reason,
                "execution_status": result.status,
                "execution_id": result.execution_id,
                "result": result.answer,
                "usage": result.usage,
                "error": result.error,
            });
            println!("{done}");
        }
        _ if stream => {
            println!();
            println!("Status: {}", result.status.as_str());
            if let Some(error) = &result.error {
                println!("Error: {error}");
            }
            if let Some(output) = &result.answer.output {
                println!("Structured output:");
                println!("{}", serde_json::to_string_pretty(output)?);
            }
        }
        Format::Json => {
            let body = json!({
                "status": result.stop_reason,
                "execution_status": result.status,
                "result": result.answer,
                "usage": result.usage,
                "error": result.error,
            });
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        _ => {
            println!("Status: {}", result.status.as_str());
            if let Some(error) = &result.error {
                println!("Error: {error}");
            }
            println!();
            println!("{}", result.answer.raw_text);
            if let Some(output) = &result.answer.output {
                println!();
                println!("Structured output:");
                println!("{}", serde_json::to_string_pretty(output)?);
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints a streamed run as it happens: the answer's tokens on stdout and tool calls on
/// stderr, or (`json`) every event as one JSON object per line. Returns the run's result.
async fn print_stream(
    mut events: agent_gateway::RunStream,
    json: bool,
) -> anyhow::Result<agent_gateway::RunResult> {
    let mut out = std::io::stdout();
    while let Some(event) = events.next().await {
        let line = match event {
            RunEvent::Finished(result) => return Ok(*result),
            RunEvent::Started { execution_id, .. } => {
                json!({"event": "execution", "execution_id": execution_id})
            }
            RunEvent::Engine(EngineEvent::Token { content }) => {
                if !json {
                    write!(out, "{content}")?;
                    out.flush()?;
                }
                json!({"event": "token", "content": content})
            }
            RunEvent::Engine(EngineEvent::ToolCall {
                call_id,
                name,
                arguments,
            }) => {
                if !json {
                    eprintln!("  [calling {name}]");
                }
                json!({"event": "tool_call", "call_id": call_id, "name": name, "arguments": arguments})
            }
            RunEvent::Engine(EngineEvent::ToolResult {
                call_id,
                name,
                output,
            }) => {
                json!({"event": "tool_result", "call_id": call_id, "name": name, "output": output})
            }
            RunEvent::Engine(EngineEvent::ApprovalRequired {
                approval_id,
                name,
                arguments,
                ..
            }) => {
                if !json {
                    eprintln!("  [{name} waits for approval {approval_id}]");
                }
                json!({"event": "approval_required", "approval_id": approval_id, "name": name, "arguments": arguments})
            }
        };
        if json {
            writeln!(out, "{line}")?;
            out.flush()?;
        }
    }
    Err(anyhow!("the run's events ended before its result"))
}

async fn chat(path: &std::path::Path, agent: &str) -> anyhow::Result<ExitCode> {
    let gateway = build_gateway(path, false, Lifetime::Command).await?;
    if gateway.agent(agent).is_none() {
        gateway.shutdown().await;
        return Err(anyhow!("agent '{agent}' not found in {}", path.display()));
    }
    let actor = Actor::system();
    // Ctrl-C cancels the turn in progress (it ends recorded `cancelled`); at the prompt it
    // ends the chat.
    let in_progress: Arc<Mutex<Option<String>>> = Arc::default();
    tokio::spawn({
        let (gateway, actor, in_progress) =
            (gateway.clone(), actor.clone(), Arc::clone(&in_progress));
        async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                let turn = in_progress
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                match turn {
                    Some(execution_id) => {
                        if let Err(err) = gateway.executions().cancel(&actor, &execution_id).await {
                            eprintln!("\nCould not cancel: {err}");
                        }
                    }
                    None => {
                        gateway.shutdown().await;
                        println!("\nBye!");
                        std::process::exit(0);
                    }
                }
            }
        }
    });
    let result = chat_turns(&gateway, &actor, agent, &in_progress).await;
    gateway.shutdown().await;
    result
}

async fn chat_turns(
    gateway: &Gateway,
    actor: &Actor,
    agent: &str,
    in_progress: &Mutex<Option<String>>,
) -> anyhow::Result<ExitCode> {
    let mut session_id: Option<String> = None;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("you> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        let message = line.trim();
        if message.is_empty() {
            continue;
        }
        if matches!(message, "exit" | "quit") {
            break;
        }
        let request = RunRequest::chat(agent, message, session_id.clone());
        let mut stream = gateway
            .run_stream(actor, request)
            .await
            .map_err(|err| anyhow!("{err}"))?;
        print!("agent> ");
        std::io::stdout().flush()?;
        let mut wrote = false;
        let mut execution_id = String::new();
        while let Some(event) = stream.next().await {
            match event {
                RunEvent::Started {
                    session_id: id,
                    execution_id: run,
                } => {
                    session_id = id;
                    *in_progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(run.clone());
                    execution_id = run;
                }
                RunEvent::Engine(EngineEvent::ApprovalRequired {
                    approval_id,
                    name,
                    arguments,
                    ..
                }) => {
                    // The run waits for this answer: ask the person at the terminal.
                    eprint!("\n  [{name} wants to run with {arguments}] approve? [y/N] ");
                    std::io::stderr().flush()?;
                    let answer = lines.next().transpose()?.unwrap_or_default();
                    let approve = matches!(answer.trim(), "y" | "Y" | "yes");
                    let decision = ApprovalDecision {
                        approval_id: Some(approval_id),
                        approve,
                        reason: (!approve).then(|| "denied at the terminal".to_string()),
                    };
                    gateway
                        .executions()
                        .decide(actor, &execution_id, decision)
                        .await
                        .map_err(|err| anyhow!("{err}"))?;
                }
                RunEvent::Engine(EngineEvent::Token { content }) => {
                    wrote |= !content.is_empty();
                    print!("{content}");
                    std::io::stdout().flush()?;
                }
                RunEvent::Engine(EngineEvent::ToolCall { name, .. }) => {
                    eprintln!("  [calling {name}]");
                }
                RunEvent::Engine(EngineEvent::ToolResult { .. }) => {}
                RunEvent::Finished(result) => {
                    *in_progress.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    if result.status == ExecutionStatus::Cancelled {
                        eprintln!("\n[cancelled]");
                        wrote = true;
                    } else if let Some(error) = &result.error {
                        eprintln!("\n[error] {error}");
                        wrote = true;
                    }
                }
            }
        }
        if !wrote {
            print!("(no response)");
        }
        println!();
    }
    println!("Bye!");
    Ok(ExitCode::SUCCESS)
}

fn keys(action: KeysAction) -> anyhow::Result<ExitCode> {
    use agent_gateway::auth::sha256_hex;
    match action {
        KeysAction::Create { name, scopes } => {
            if name.trim().is_empty() || name.contains(['"', '\n']) {
                return Err(anyhow!("key name '{name}' is not usable"));
            }
            let key = agent_gateway::auth::generate_key();
            let scopes: Vec<String> = scopes
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            eprintln!("Key for '{name}' (shown once, keep it secret):");
            println!("{key}");
            eprintln!("\nAdd under auth.api_keys in gateway.yaml:");
            eprintln!(
                "    - {{name: \"{name}\", key_sha256: {}, scopes: {}}}",
                sha256_hex(&key),
                serde_json::to_string(&scopes)?
            );
        }
        KeysAction::Hash => {
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            let key = key.trim();
            if key.is_empty() {
                return Err(anyhow!("no key on standard input"));
            }
            println!("{}", sha256_hex(key));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn db(path: &std::path::Path, action: DbAction) -> anyhow::Result<ExitCode> {
    use agent_gateway::store::{SqlStore, migrate};
    let workspace = load_workspace(path)?;
    let persistence = &workspace.config.persistence;
    if !persistence.enabled {
        return Err(anyhow!(
            "persistence is disabled in {}/gateway.yaml: there is no database",
            path.display()
        ));
    }
    let store =
        SqlStore::connect_in_schema(&persistence.url, path, persistence.db_schema.as_deref())
            .await
            .map_err(|err| anyhow!("{err}"))?;
    match action {
        DbAction::Upgrade { version } => {
            let reached = migrate::upgrade(&store, version)
                .await
                .map_err(|err| anyhow!("{err}"))?;
            println!("Upgraded to {reached}");
        }
        DbAction::Downgrade { version } => {
            let reached = migrate::downgrade(&store, version)
                .await
                .map_err(|err| anyhow!("{err}"))?;
            println!("Downgraded to {reached}");
        }
        DbAction::Current => {
            println!(
                "{}",
                migrate::current(&store)
                    .await
                    .map_err(|err| anyhow!("{err}"))?
            );
        }
        DbAction::History => {
            for migration in migrate::history(&store)
                .await
                .map_err(|err| anyhow!("{err}"))?
            {
                let mark = if migration.applied {
                    "applied"
                } else {
                    "pending"
                };
                println!(
                    "{:>4}  {mark:<8} {}",
                    migration.version, migration.description
                );
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn load_workspace(path: &std::path::Path) -> anyhow::Result<Workspace> {
    require_workspace(path)?;
    let workspace = Workspace::load(path, &GatewayConfig::process_env());
    if !workspace.config_valid {
        let errors: Vec<String> = workspace
            .diagnostics
            .errors()
            .map(|d| d.to_string())
            .collect();
        return Err(anyhow!("invalid gateway.yaml:\n  {}", errors.join("\n  ")));
    }
    Ok(workspace)
}

fn list_agents(path: &std::path::Path, format: Format) -> anyhow::Result<ExitCode> {
    let workspace = load_workspace(path)?;
    let mut table = Table::new(&["id", "skills", "tools", "model"], "No agents found.");
    for agent in workspace.agents.values() {
        table.row(vec![
            json!(agent.id),
            json!(agent.skills.len()),
            json!(workspace.tool_names_of(agent).len()),
            json!(
                agent
                    .model
                    .name
                    .clone()
                    .unwrap_or_else(|| "(default)".into())
            ),
        ]);
    }
    table.print(format)?;
    Ok(ExitCode::SUCCESS)
}

async fn list_schedules(path: &std::path::Path, format: Format) -> anyhow::Result<ExitCode> {
    use agent_gateway::scheduler::{next_fire, workspace_record};
    use agent_gateway::store::{ScheduleStore, SqlStore};
    let workspace = load_workspace(path)?;
    let persistence = &workspace.config.persistence;
    // Stored rows carry runtime edits and admin schedules; without a database there are none.
    let stored = if persistence.enabled {
        let store =
            SqlStore::connect_in_schema(&persistence.url, path, persistence.db_schema.as_deref())
                .await
                .map_err(|e| anyhow!("{e}"))?;
        store.list_schedules().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    for agent in workspace.agents.values() {
        for definition in &agent.schedules {
            let id = format!("{}:{}", agent.id, definition.name);
            let existing = stored.iter().find(|r| r.id == id);
            rows.push(workspace_record(
                &agent.id,
                definition,
                &workspace.config.timezone,
                existing,
            ));
        }
    }
    rows.extend(stored.into_iter().filter(|r| r.source == "admin"));
    let mut table = Table::new(
        &[
            "id", "agent", "cron", "enabled", "timezone", "source", "next_run",
        ],
        "No schedules found.",
    );
    for record in rows {
        let next = record
            .enabled
            .then(|| next_fire(&record, chrono::Utc::now()))
            .flatten();
        table.row(vec![
            json!(record.id),
            json!(record.agent_id),
            json!(record.cron_expr),
            json!(record.enabled),
            json!(record.timezone),
            json!(record.source),
            json!(next.map(|t| t.to_rfc3339())),
        ]);
    }
    table.print(format)?;
    Ok(ExitCode::SUCCESS)
}

fn list_skills(path: &std::path::Path, format: Format) -> anyhow::Result<ExitCode> {
    let workspace = load_workspace(path)?;
    let mut table = Table::new(&["id", "tools", "steps", "description"], "No skills found.");
    for skill in workspace.skills.values() {
        table.row(vec![
            json!(skill.id),
            json!(skill.all_tools().len()),
            json!(skill.steps.len()),
            json!(skill.description),
        ]);
    }
    table.print(format)?;
    Ok(ExitCode::SUCCESS)
}

fn check(path: &std::path::Path) -> ExitCode {
    println!("Workspace: {}", path.display());
    let env = GatewayConfig::process_env();
    let workspace = Workspace::load(path, &env);
    let mut diagnostics = workspace.all_diagnostics(&ExternalNames::default());
    if workspace.config_valid {
        // Missing model keys: a warning now rather than a failed call later.
        diagnostics.extend(agent_gateway::check_models(&workspace, &env));
    }
    let (test_files, test_problems) = workspace_tests::load(&workspace);
    diagnostics.extend(test_problems);
    println!();
    println!("Agents:");
    if workspace.agents.is_empty() {
        println!("  (none)");
    }
    for agent in workspace.agents.values() {
        let state = if agent.enabled { "" } else { " (disabled)" };
        println!("  [ok] {}{state}", agent.id);
    }
    println!("Skills:");
    if workspace.skills.is_empty() {
        println!("  (none)");
    }
    for skill in workspace.skills.values() {
        let workflow = if skill.has_workflow() {
            format!(" ({} steps)", skill.steps.len())
        } else {
            String::new()
        };
        println!("  [ok] {}{workflow}", skill.id);
    }
    println!("Tools:");
    if workspace.tools.is_empty() {
        println!("  (none)");
    }
    for tool in workspace.tools.values() {
        let kind = match &tool.handler {
            Some(agent_gateway::workspace::ToolHandler::Python(_)) => "function",
            Some(agent_gateway::workspace::ToolHandler::Executable(_)) => "executable",
            None => "no handler",
        };
        println!("  [ok] {} ({kind})", tool.name);
    }
    println!("Schedules:");
    let schedules: Vec<_> = workspace
        .agents
        .values()
        .flat_map(|a| a.schedules.iter().map(move |s| (a, s)))
        .collect();
    if schedules.is_empty() {
        println!("  (none)");
    }
    for (agent, schedule) in schedules {
        println!("  [ok] {}:{} ({})", agent.id, schedule.name, schedule.cron);
    }
    println!("Tests:");
    if test_files.is_empty() {
        println!("  (none)");
    }
    for file in &test_files {
        println!("  [ok] {} ({} cases)", file.name, file.cases.len());
    }
    let (warnings, errors) = output::write_diagnostics(&mut std::io::stdout(), &diagnostics);
    println!();
    if errors == 0 {
        println!("Validation passed.");
        ExitCode::SUCCESS
    } else {
        println!("Validation failed: {errors} error(s), {warnings} warning(s).");
        ExitCode::FAILURE
    }
}
