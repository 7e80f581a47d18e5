//! Maps `gateway.yaml` (`providers`, `model`), the workspace's model scripts and the
//! environment onto the model client's settings.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_llm::{LlmSettings, ProviderKind, ProviderSettings};
use gateway_workspace::Workspace;
use gateway_workspace::config::ProviderKind as ConfigKind;

pub(crate) fn from_workspace(workspace: &Workspace, env: &BTreeMap<String, String>) -> LlmSettings {
    let config = &workspace.config;
    let mut settings = LlmSettings::from_env_map(env.clone());
    settings.scripts = workspace.model_scripts.clone();
    for (name, provider) in &config.providers {
        let mut entry = settings
            .providers
            .get(name)
            .cloned()
            .unwrap_or_else(|| ProviderSettings::new(ProviderKind::OpenAi));
        if let Some(kind) = provider.kind {
            entry.kind = match kind {
                ConfigKind::Openai => ProviderKind::OpenAi,
                ConfigKind::Anthropic => ProviderKind::Anthropic,
                ConfigKind::Gemini => ProviderKind::Gemini,
            };
        }
        if let Some(key) = &provider.api_key {
            entry.api_key = Some(key.clone());
        }
        if let Some(var) = &provider.api_key_env {
            entry.api_key_env = Some(var.clone());
        }
        if let Some(base) = &provider.api_base {
            entry.api_base = Some(base.clone());
        }
        entry.headers.extend(provider.headers.clone());
        if let Some(ms) = provider.timeout_ms {
            entry.timeout = Some(Duration::from_millis(ms));
        }
        if let Some(retries) = provider.max_retries {
            entry.max_retries = Some(retries);
        }
        if let Some(ms) = provider.retry_base_delay_ms {
            entry.retry_base_delay = Some(Duration::from_millis(ms));
        }
        settings.providers.insert(name.clone(), entry);
    }
    settings
}
