//! File tools: `tools/<id>/TOOL.md` with a handler run as a subprocess per call.
//!
//! `handler.py` runs under Python with [the runner](python_runner.py), which supports both the
//! 0.2.13 contract `handle(arguments, context)` and the product description's
//! `handler(**arguments)`, sync or async. Any other executable handler gets
//! `{"arguments", "context"}` as JSON on stdin and answers with JSON on stdout (plain text is
//! taken as a string). Each call has a time limit and an output size limit; the process is
//! killed when either is exceeded.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use gateway_workspace::config::ToolsConfig;
use gateway_workspace::{ToolDefinition, ToolHandler};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{Tool, ToolContext, ToolError, ToolSource};

const PYTHON_RUNNER: &str = include_str!("python_runner.py");
/// How much of a failing handler's stderr is kept for the error message.
const STDERR_TAIL: usize = 2048;

/// A tool declared by TOOL.md.
pub struct FileTool {
    definition: ToolDefinition,
    settings: ToolsConfig,
}

impl FileTool {
    pub fn new(definition: ToolDefinition, settings: ToolsConfig) -> Self {
        Self {
            definition,
            settings,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(
            self.definition
                .timeout_ms
                .unwrap_or(self.settings.timeout_ms),
        )
    }

    fn command(&self, handler: &ToolHandler) -> Command {
        // The process runs in the tool's folder, so relative paths would no longer resolve.
        let absolute =
            |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut command = match handler {
            ToolHandler::Python(script) => {
                let mut c = Command::new(&self.settings.python);
                c.arg("-c").arg(PYTHON_RUNNER).arg(absolute(script));
                c
            }
            ToolHandler::Executable(program) => Command::new(absolute(program)),
        };
        command
            .current_dir(&self.definition.dir)
            // The gateway's own secret never reaches handler code.
            .env_remove("AGENT_GATEWAY_SECRET_KEY")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, handler: &ToolHandler, request: Vec<u8>) -> Result<Value, ToolError> {
        let name = &self.definition.name;
        let mut child = self.command(handler).spawn().map_err(|err| {
            ToolError::failed(format!(
                "cannot start handler {}: {err}",
                program_of(handler).display()
            ))
        })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ToolError::failed("handler pipes unavailable"));
        };
        let limit = self.settings.max_output_bytes;
        let exchange = async {
            // A handler may exit without reading its input; that is not our failure.
            let write = async {
                let _ = stdin.write_all(&request).await;
                drop(stdin);
            };
            let (_, out, err) = tokio::join!(write, read_limited(stdout, limit), read_tail(stderr));
            let status = child.wait().await;
            (out, err, status)
        };
        let (out, err_tail, status) = match tokio::time::timeout(self.timeout(), exchange).await {
            Ok(done) => done,
            Err(_) => {
                tracing::warn!(tool = %name, "handler timed out; killed");
                return Err(ToolError::Timeout(self.timeout().as_millis() as u64));
            }
        };
        let out = out.map_err(ToolError::failed)?;
        let status =
            status.map_err(|err| ToolError::failed(format!("handler did not finish: {err}")))?;
        match handler {
            ToolHandler::Python(_) => python_answer(&out, &err_tail, status.success()),
            ToolHandler::Executable(_) => {
                if !status.success() {
                    return Err(ToolError::failed(format!(
                        "handler exited with {status}{}",
                        last_line_suffix(&err_tail)
                    )));
                }
                let text = String::from_utf8_lossy(&out);
                let text = text.trim();
                Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
            }
        }
    }
}

fn program_of(handler: &ToolHandler) -> &Path {
    match handler {
        ToolHandler::Python(p) | ToolHandler::Executable(p) => p,
    }
}

fn python_answer(out: &[u8], err_tail: &str, exited_ok: bool) -> Result<Value, ToolError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        ok: bool,
        #[serde(default)]
        result: Value,
        #[serde(default)]
        error: Option<String>,
    }
    match serde_json::from_slice::<Answer>(out) {
        Ok(answer) if answer.ok => Ok(answer.result),
        Ok(answer) => Err(ToolError::failed(
            answer.error.unwrap_or_else(|| "handler failed".to_string()),
        )),
        Err(_) if !exited_ok => Err(ToolError::failed(format!(
            "handler process crashed{}",
            last_line_suffix(err_tail)
        ))),
        Err(err) => Err(ToolError::failed(format!(
            "handler answered with invalid JSON: {err}"
        ))),
    }
}

fn last_line_suffix(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}

async fn read_limited(mut reader: impl AsyncRead + Unpin, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = reader
            .read(&mut chunk)
            .await
            .map_err(|err| format!("cannot read handler output: {err}"))?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > limit {
            return Err(format!("handler output exceeded {limit} bytes"));
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

async fn read_tail(mut reader: impl AsyncRead + Unpin) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > STDERR_TAIL * 2 {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

#[async_trait]
impl Tool for FileTool {
    fn name(&self) -> &str {
        &self.definition.name
    }

    fn description(&self) -> &str {
        &self.definition.description
    }

    fn parameters(&self) -> &Value {
        &self.definition.parameters
    }

    fn source(&self) -> ToolSource {
        ToolSource::File
    }

    fn allows_agent(&self, agent_id: &str) -> bool {
        self.definition
            .permissions
            .allowed_agents
            .as_ref()
            .is_none_or(|agents| agents.iter().any(|a| a == agent_id))
    }

    fn instructions(&self) -> &str {
        &self.definition.instructions
    }

    fn requires_approval(&self) -> bool {
        self.definition.permissions.require_approval
    }

    async fn call(&self, arguments: Value, context: &ToolContext) -> Result<Value, ToolError> {
        let Some(handler) = &self.definition.handler else {
            return Err(ToolError::failed(format!(
                "tool '{}' has no handler (add handler.py or an executable 'handler' to {})",
                self.definition.name,
                self.definition.dir.display()
            )));
        };
        let request = serde_json::to_vec(&json!({"arguments": arguments, "context": context}))
            .map_err(|err| ToolError::failed(format!("cannot encode the call: {err}")))?;
        self.run(handler, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn tool(dir: &Path, handler: ToolHandler, timeout_ms: Option<u64>) -> FileTool {
        FileTool::new(
            ToolDefinition {
                id: "t".into(),
                name: "t".into(),
                description: "test".into(),
                parameters: json!({"type": "object", "properties": {}}),
                instructions: String::new(),
                dir: dir.to_path_buf(),
                file: dir.join("TOOL.md"),
                handler: Some(handler),
                permissions: Default::default(),
                timeout_ms,
            },
            ToolsConfig {
                max_output_bytes: 10_000,
                ..ToolsConfig::default()
            },
        )
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn context() -> ToolContext {
        ToolContext {
            execution_id: "e1".into(),
            agent_id: "assistant".into(),
            ..ToolContext::default()
        }
    }

    #[tokio::test]
    async fn python_handle_contract_sync_and_async() {
        let dir = tempfile::tempdir().unwrap();
        let script = write(
            dir.path(),
            "handler.py",
            "def handle(arguments, context):\n    print('noise on stdout')\n    return {'sum': arguments['a'] + arguments['b'], 'agent': context.agent_id, 'exec': context['execution_id']}\n",
        );
        let t = tool(dir.path(), ToolHandler::Python(script), None);
        let out = t.call(json!({"a": 2, "b": 3}), &context()).await.unwrap();
        assert_eq!(out, json!({"sum": 5, "agent": "assistant", "exec": "e1"}));

        let script = write(
            dir.path(),
            "async_handler.py",
            "import asyncio\nasync def handler(url: str) -> str:\n    await asyncio.sleep(0)\n    return 'fetched ' + url\n",
        );
        let t = tool(dir.path(), ToolHandler::Python(script), None);
        let out = t
            .call(json!({"url": "x", "extra": 1}), &context())
            .await
            .unwrap();
        assert_eq!(out, json!("fetched x"));
    }

    #[tokio::test]
    async fn relative_workspace_paths_resolve() {
        // A workspace given as a relative path (`serve -w examples/workspace`).
        let dir = tempfile::tempdir_in(".").unwrap();
        let relative = PathBuf::from(dir.path().file_name().unwrap());
        write(
            &relative,
            "handler.py",
            "def handle(arguments, context):\n    return 'found'\n",
        );
        let t = tool(
            &relative,
            ToolHandler::Python(relative.join("handler.py")),
            None,
        );
        assert_eq!(t.call(json!({}), &context()).await.unwrap(), json!("found"));
    }

    #[tokio::test]
    async fn python_errors_are_clean() {
        let dir = tempfile::tempdir().unwrap();
        let script = write(
            dir.path(),
            "handler.py",
            "def handle(arguments, context):\n    raise ValueError('bad input')\n",
        );
        let t = tool(dir.path(), ToolHandler::Python(script), None);
        let err = t.call(json!({}), &context()).await.unwrap_err();
        assert_eq!(err.to_string(), "ValueError: bad input");

        let script = write(dir.path(), "none.py", "x = 1\n");
        let t = tool(dir.path(), ToolHandler::Python(script), None);
        let err = t.call(json!({}), &context()).await.unwrap_err();
        assert!(err.to_string().contains("neither handle"), "{err}");

        let script = write(
            dir.path(),
            "crash.py",
            "import os\ndef handle(a, c):\n    os._exit(3)\n",
        );
        let t = tool(dir.path(), ToolHandler::Python(script), None);
        let err = t.call(json!({}), &context()).await.unwrap_err();
        assert!(err.to_string().contains("crashed"), "{err}");
    }

    #[cfg(unix)]
    fn executable(dir: &Path, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = write(dir, "handler", text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn executable_handlers_speak_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = executable(
            dir.path(),
            "#!/bin/sh\nread input\necho \"{\\\"echo\\\": $input}\"\n",
        );
        let t = tool(dir.path(), ToolHandler::Executable(path), None);
        let out = t.call(json!({"q": 1}), &context()).await.unwrap();
        assert_eq!(out["echo"]["arguments"], json!({"q": 1}));
        assert_eq!(out["echo"]["context"]["agent_id"], "assistant");

        let path = executable(dir.path(), "#!/bin/sh\necho 'boom' >&2\nexit 4\n");
        let t = tool(dir.path(), ToolHandler::Executable(path), None);
        let err = t.call(json!({}), &context()).await.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn limits_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let path = executable(dir.path(), "#!/bin/sh\nsleep 5\n");
        let t = tool(dir.path(), ToolHandler::Executable(path), Some(200));
        let err = t.call(json!({}), &context()).await.unwrap_err();
        assert!(matches!(err, ToolError::Timeout(200)), "{err}");

        let path = executable(
            dir.path(),
            "#!/bin/sh\nhead -c 20000 /dev/zero | tr '\\0' 'x'\n",
        );
        let t = tool(dir.path(), ToolHandler::Executable(path), None);
        let err = t.call(json!({}), &context()).await.unwrap_err();
        assert!(err.to_string().contains("exceeded"), "{err}");
    }
}
