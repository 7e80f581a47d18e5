//! MCP (Model Context Protocol) servers whose tools agents can call, through the official
//! SDK (`rmcp`).
//!
//! Servers come from `gateway.yaml` (`mcp.servers`), from code (`GatewayBuilder::mcp_server`)
//! and from the admin API (stored, with env, headers and credentials sealed by
//! [`crate::secrets`]). The [`McpManager`] keeps one connection per server, reconnects one
//! that dies, and turns each discovered tool into a [`McpTool`] named `{server}__{tool}`,
//! given to the agents that list the server in `mcp_servers`.

pub mod decode;
mod manager;
mod tool;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use manager::{McpManager, McpOrigin, McpServerState, McpTest, McpTimeouts};
pub use tool::{McpTool, McpToolInfo};

/// How the gateway talks to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum McpTransport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio,
    /// A remote server over MCP's streamable HTTP transport.
    StreamableHttp,
}

impl McpTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::StreamableHttp => "streamable_http",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "stdio" => Some(Self::Stdio),
            "streamable_http" => Some(Self::StreamableHttp),
            _ => None,
        }
    }
}

/// One MCP server: how to reach it and with which secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// `^[a-z0-9][a-z0-9_-]*$`, at most 64 characters; the prefix of its tools' names.
    pub name: String,
    pub transport: McpTransport,
    /// The program to run (stdio).
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment of the child process (stdio).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The endpoint (streamable HTTP).
    #[serde(default)]
    pub url: Option<String>,
    /// Headers sent with every request (streamable HTTP).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `{auth_type: none | static_header | oauth2_client_credentials, ...}`.
    #[serde(default)]
    pub credentials: Option<Map<String, Value>>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl McpServerConfig {
    /// A server run as a child process.
    pub fn stdio(
        name: impl Into<String>,
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            transport: McpTransport::Stdio,
            command: Some(command.into()),
            args: args.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            url: None,
            headers: BTreeMap::new(),
            credentials: None,
            enabled: true,
        }
    }

    /// A server reached over streamable HTTP.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            transport: McpTransport::StreamableHttp,
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            url: Some(url.into()),
            headers: BTreeMap::new(),
            credentials: None,
            enabled: true,
        }
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Every problem with this configuration (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !valid_name(&self.name) {
            problems.push(format!(
                "name '{}' must match ^[a-z0-9][a-z0-9_-]*$ and be at most 64 characters",
                self.name
            ));
        }
        match self.transport {
            McpTransport::Stdio => {
                if self.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                    problems.push("a stdio server needs 'command'".to_string());
                }
                if self.url.is_some() {
                    problems.push("a stdio server takes no 'url'".to_string());
                }
                if !self.headers.is_empty() {
                    problems.push("a stdio server takes no 'headers' (use 'env')".to_string());
                }
            }
            McpTransport::StreamableHttp => {
                match self.url.as_deref() {
                    None => problems.push("a streamable_http server needs 'url'".to_string()),
                    Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                        problems.push(format!("url '{url}' must start with http:// or https://"))
                    }
                    Some(_) => {}
                }
                if self.command.is_some() || !self.args.is_empty() {
                    problems
                        .push("a streamable_http server takes no 'command' or 'args'".to_string());
                }
                if !self.env.is_empty() {
                    problems.push("a streamable_http server takes no 'env'".to_string());
                }
                for name in self.headers.keys() {
                    if http::HeaderName::try_from(name.as_str()).is_err() {
                        problems.push(format!("'{name}' is not a valid header name"));
                    }
                }
            }
        }
        if let Some(credentials) = &self.credentials
            && let Err(problem) = AuthType::of(credentials)
        {
            problems.push(problem);
        }
        problems
    }

    /// What the outbound policy refuses of the URLs this server would be reached at: its
    /// own and an OAuth token endpoint's. Names are checked again when they resolve.
    pub fn refused_by(&self, policy: &crate::outbound::OutboundPolicy) -> Option<String> {
        let token_url = self
            .credentials
            .as_ref()
            .and_then(|c| c.get("token_url"))
            .and_then(Value::as_str);
        self.url
            .as_deref()
            .into_iter()
            .chain(token_url)
            .find_map(|url| policy.check_url(url).err())
            .map(|err| err.to_string())
    }

    /// Whether it carries anything that must be stored encrypted.
    pub fn has_secrets(&self) -> bool {
        !self.env.is_empty()
            || !self.headers.is_empty()
            || self.credentials.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// `none`, the credentials' `auth_type`, or `static_header` when only headers are set.
    pub fn auth_type(&self) -> &'static str {
        match self.credentials.as_ref().map(AuthType::of) {
            Some(Ok(kind)) if kind != AuthType::None => kind.as_str(),
            _ if !self.headers.is_empty() => AuthType::StaticHeader.as_str(),
            _ => AuthType::None.as_str(),
        }
    }
}

/// `^[a-z0-9][a-z0-9_-]*$`, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthType {
    None,
    StaticHeader,
    Oauth2ClientCredentials,
}

impl AuthType {
    fn of(credentials: &Map<String, Value>) -> Result<Self, String> {
        let kind = credentials
            .get("auth_type")
            .and_then(Value::as_str)
            .unwrap_or("static_header");
        let kind = match kind {
            "none" => Self::None,
            "static_header" => Self::StaticHeader,
            "oauth2_client_credentials" => Self::Oauth2ClientCredentials,
            "google_service_account" => {
                return Err(
                    "credentials.auth_type 'google_service_account' is not supported; use static_header with a token, or oauth2_client_credentials"
                        .to_string(),
                );
            }
            other => {
                return Err(format!(
                    "credentials.auth_type '{other}' is not one of none, static_header, oauth2_client_credentials"
                ));
            }
        };
        if kind == Self::Oauth2ClientCredentials {
            for field in ["token_url", "client_id", "client_secret"] {
                if credentials.get(field).and_then(Value::as_str).is_none() {
                    return Err(format!(
                        "credentials of type oauth2_client_credentials need '{field}'"
                    ));
                }
            }
        }
        Ok(kind)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::StaticHeader => "static_header",
            Self::Oauth2ClientCredentials => "oauth2_client_credentials",
        }
    }
}

/// The headers a server's credentials add to its requests. OAuth2 client credentials are
/// exchanged for a token at the issuer first.
async fn credential_headers(
    credentials: &Map<String, Value>,
    http: &reqwest::Client,
) -> Result<BTreeMap<String, String>, String> {
    let text = |key: &str| credentials.get(key).and_then(Value::as_str);
    let mut headers = BTreeMap::new();
    match AuthType::of(credentials)? {
        AuthType::None => {}
        AuthType::StaticHeader => {
            if let Some(Value::Object(extra)) = credentials.get("headers") {
                for (name, value) in extra {
                    if let Some(value) = value.as_str() {
                        headers.insert(name.clone(), value.to_string());
                    }
                }
            }
            if let Some(token) = text("bearer_token") {
                headers.insert("authorization".into(), format!("Bearer {token}"));
            }
            if let Some(key) = text("api_key") {
                let header = text("api_key_header").unwrap_or("x-api-key");
                headers.insert(header.to_string(), key.to_string());
            }
            const KNOWN: [&str; 5] = [
                "auth_type",
                "headers",
                "bearer_token",
                "api_key",
                "api_key_header",
            ];
            for (name, value) in credentials {
                if let (false, Some(value)) = (KNOWN.contains(&name.as_str()), value.as_str()) {
                    headers.insert(name.clone(), value.to_string());
                }
            }
        }
        AuthType::Oauth2ClientCredentials => {
            let mut form = vec![
                ("grant_type", "client_credentials"),
                ("client_id", text("client_id").unwrap_or_default()),
                ("client_secret", text("client_secret").unwrap_or_default()),
            ];
            if let Some(scope) = text("scope") {
                form.push(("scope", scope));
            }
            let url = text("token_url").unwrap_or_default();
            let body = serde_urlencoded(&form);
            let response = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("token request to {url} failed: {e}"))?;
            let status = response.status();
            let token: Value = response
                .json()
                .await
                .map_err(|e| format!("token response from {url} is not JSON: {e}"))?;
            let access = token
                .get("access_token")
                .and_then(Value::as_str)
                .filter(|_| status.is_success())
                .ok_or_else(|| {
                    format!("token endpoint {url} answered {status} without access_token")
                })?;
            headers.insert("authorization".into(), format!("Bearer {access}"));
        }
    }
    Ok(headers)
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn serde_urlencoded(pairs: &[(&str, &str)]) -> String {
    fn encode(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                other => format!("%{other:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configurations_are_checked_as_a_whole() {
        assert!(
            McpServerConfig::stdio("files", "mcp-files", ["--root", "/"])
                .problems()
                .is_empty()
        );
        assert!(
            McpServerConfig::http("web", "http://127.0.0.1:1/mcp")
                .problems()
                .is_empty()
        );
        let mut bad = McpServerConfig::http("Bad Name", "ftp://x");
        bad.command = Some("x".into());
        bad.env.insert("A".into(), "b".into());
        let problems = bad.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        let mut no_command = McpServerConfig::stdio("a", "", Vec::<String>::new());
        no_command.url = Some("http://x".into());
        assert_eq!(no_command.problems().len(), 2);
        assert!(!valid_name(&"a".repeat(65)));
        assert!(valid_name("my-tools_2"));
    }

    #[test]
    fn credentials_are_validated_and_typed() {
        let mut config = McpServerConfig::http("web", "http://x/mcp");
        assert_eq!(config.auth_type(), "none");
        config.credentials = json!({"auth_type": "google_service_account"})
            .as_object()
            .cloned();
        assert!(config.problems()[0].contains("not supported"));
        config.credentials =
            json!({"auth_type": "oauth2_client_credentials", "token_url": "http://t"})
                .as_object()
                .cloned();
        assert!(config.problems()[0].contains("client_id"));
        config.credentials = json!({"bearer_token": "t"}).as_object().cloned();
        assert!(config.problems().is_empty());
        assert_eq!(config.auth_type(), "static_header");
    }

    #[tokio::test]
    async fn static_credentials_become_headers() {
        let credentials = json!({"auth_type": "static_header", "bearer_token": "tok", "api_key": "k", "api_key_header": "x-key", "x-tenant": "acme", "headers": {"x-extra": "1"}});
        let headers = credential_headers(
            credentials.as_object().unwrap_or(&Map::new()),
            &reqwest::Client::new(),
        )
        .await
        .unwrap_or_default();
        assert_eq!(
            headers.get("authorization").map(String::as_str),
            Some("Bearer tok")
        );
        assert_eq!(headers.get("x-key").map(String::as_str), Some("k"));
        assert_eq!(headers.get("x-tenant").map(String::as_str), Some("acme"));
        assert_eq!(headers.get("x-extra").map(String::as_str), Some("1"));
        assert_eq!(serde_urlencoded(&[("a b", "c&d")]), "a+b=c%26d");
    }
}
