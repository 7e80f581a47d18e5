//! `mock-llm`: the scripted fake LLM server as a program.

use std::net::SocketAddr;
use std::process::ExitCode;

use mock_llm::{MockLlm, Reply, Script};

const USAGE: &str =
    "usage: mock-llm [--host 127.0.0.1] [--port 9100] [--script replies.yaml] [--default-text TEXT]

Speaks the OpenAI (/v1/chat/completions), Anthropic (/v1/messages) and Gemini
(/v1beta/models/<model>:generateContent) APIs. Queued replies (from --script, a YAML or
JSON script file as the gateway's scripted models read, or POST /_mock/replies) answer
first; otherwise the default reply, and without one the echo.";

struct Args {
    host: String,
    port: u16,
    script: Option<String>,
    default_text: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: "127.0.0.1".into(),
        port: 9100,
        script: None,
        default_text: None,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--host" => args.host = value()?,
            "--port" => {
                args.port = value()?
                    .parse()
                    .map_err(|_| "--port must be a number".to_string())?
            }
            "--script" => args.script = Some(value()?),
            "--default-text" => args.default_text = Some(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("Error: {message}");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    let addr: SocketAddr = match format!("{}:{}", args.host, args.port).parse() {
        Ok(addr) => addr,
        Err(_) => {
            eprintln!("Error: invalid address {}:{}", args.host, args.port);
            return ExitCode::FAILURE;
        }
    };
    let mock = match MockLlm::start_on(addr).await {
        Ok(mock) => mock,
        Err(err) => {
            eprintln!("Error: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.script {
        match read_script(path) {
            Ok(script) => mock.load(script),
            Err(err) => {
                eprintln!("Error: cannot read script {path}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(text) = args.default_text {
        mock.set_default(Reply::text(text));
    }
    println!("mock-llm listening on {}", mock.url());
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}

/// A script file: YAML (JSON is YAML too).
fn read_script(path: &str) -> Result<Script, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_saphyr::from_str(&text).map_err(|e| e.to_string())?;
    Script::from_json(value).map_err(|e| e.to_string())
}
