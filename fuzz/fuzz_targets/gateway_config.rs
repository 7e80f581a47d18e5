//! `gateway.yaml` with `${VAR}` substitution, the `OTEL_*` variables and the
//! `AGENT_GATEWAY_*__*` overlay. The input is the file, then (after a line `--8<--`) the
//! environment as `NAME=value` lines. A configuration that loads is then read the way the
//! server reads it at start (rates, timezone, URLs).
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use gateway_workspace::config::{redact_url, sqlite_path};
use gateway_workspace::{GatewayConfig, rate, schedule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (yaml, env_text) = text.split_once("\n--8<--\n").unwrap_or((&text, ""));
    let env: BTreeMap<String, String> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let loaded = GatewayConfig::from_yaml(Path::new("ws/gateway.yaml"), yaml, &env);
    for diagnostic in loaded.diagnostics.iter() {
        let _ = diagnostic.to_string();
    }
    let Some(config) = loaded.config else {
        return;
    };
    let _ = rate::parse_rate(&config.rate_limit.default_limit);
    for limit in config.rate_limit.routes.values() {
        let _ = rate::parse_rate(limit);
    }
    let _ = schedule::parse_timezone(&config.timezone);
    let _ = redact_url(&config.persistence.url);
    let _ = sqlite_path(&config.persistence.url, Path::new("ws"));
    let _ = config.telemetry.endpoint();
});
