//! Property: a configuration written as YAML reads back as the same configuration.
//!
//! Configurations are generated over the main keys (any text in strings, the whole range of
//! numbers the rules allow), written by a YAML serializer, and loaded by
//! `GatewayConfig::from_yaml`, the path `gateway.yaml` takes: what the loader does to text
//! (`${VAR}`, scalar coercion, line lookup for errors) must not change a value it was given.

use std::collections::BTreeMap;
use std::path::Path;

use gateway_workspace::GatewayConfig;
use gateway_workspace::config::{
    ApiKeyConfig, AuthMode, ExecutionMode, LogFormat, PersistenceBackend, ProviderConfig,
    ProviderKind, QueueBackend, TelemetryExporter,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any text, except a `${` (it names a variable: substituting it is the loader's job).
fn text() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("no ${VAR} reference", |s| !s.contains("${"))
}

/// Keys of mappings (`providers`, `context`, ...): any text but the reference marker.
fn key() -> impl Strategy<Value = String> {
    text()
}

/// An `http(s)://` URL with any text after the scheme.
fn url() -> impl Strategy<Value = String> {
    (prop_oneof![Just("http://"), Just("https://")], text())
        .prop_map(|(scheme, rest)| format!("{scheme}{rest}"))
}

/// A header value: any text without control characters.
fn header_value() -> impl Strategy<Value = String> {
    text().prop_filter("no control characters", |v| {
        !v.bytes().any(|b| b.is_ascii_control())
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Finite floats: YAML's .inf/.nan are kept as text (JSON has no such numbers).
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(key(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn provider() -> impl Strategy<Value = ProviderConfig> {
    (
        prop::option::of(prop_oneof![
            Just(ProviderKind::Openai),
            Just(ProviderKind::Anthropic),
            Just(ProviderKind::Gemini)
        ]),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        btree_map(key(), text(), 0..3),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u32>()),
    )
        .prop_map(
            |(kind, api_key, api_key_env, api_base, headers, timeout_ms, max_retries)| {
                ProviderConfig {
                    kind,
                    api_key,
                    api_key_env,
                    api_base,
                    headers,
                    timeout_ms,
                    max_retries,
                    ..ProviderConfig::default()
                }
            },
        )
}

fn api_key() -> impl Strategy<Value = ApiKeyConfig> {
    // Exactly one of a key (not blank) and a SHA-256 (64 hex digits): the loader's rule.
    let secret = prop_oneof![
        text()
            .prop_filter("not blank", |k| !k.trim().is_empty())
            .prop_map(|k| (Some(k), None)),
        "[0-9a-f]{64}".prop_map(|h| (None, Some(h))),
    ];
    (text(), secret, vec(text(), 0..3)).prop_map(|(name, (key, key_sha256), scopes)| ApiKeyConfig {
        name,
        key,
        key_sha256,
        scopes,
    })
}

/// A rate the loader accepts.
fn rate() -> impl Strategy<Value = String> {
    (
        1u32..=1_000_000,
        prop_oneof![
            Just("second"),
            Just("minute"),
            Just("hour"),
            Just("day"),
            Just("5 minutes")
        ],
    )
        .prop_map(|(count, unit)| format!("{count}/{unit}"))
}

prop_compose! {
    fn config()(
        timezone in prop_oneof![Just("UTC"), Just("Europe/London"), Just("Asia/Kolkata"), Just("America/Argentina/Buenos_Aires")],
        context in btree_map(key(), json_value(), 0..4),
        server in (text(), any::<u16>(), any::<u32>(), text(), 1u64..=3600),
        model in (text(), 0.0f64..=2.0, any::<u32>(), prop::option::of(text()), prop::option::of(text()), prop::option::of(text())),
        guardrails in (any::<u32>(), any::<u32>(), any::<u64>(), any::<u32>(), any::<u32>(), any::<usize>(), any::<u64>()),
        auth in (any::<bool>(), vec(api_key(), 1..3), vec(text(), 0..3), prop::option::of(prop_oneof![Just(AuthMode::ApiKey), Just(AuthMode::None)])),
        persistence in (any::<bool>(), prop_oneof![Just(PersistenceBackend::Sqlite), Just(PersistenceBackend::Postgres)], text(), prop::option::of(text())),
        queue in (prop_oneof![Just(QueueBackend::None), Just(QueueBackend::Memory), Just(QueueBackend::Redis), Just(QueueBackend::Rabbitmq)], text(), any::<u32>(), 0u64..=86_400, prop_oneof![Just(ExecutionMode::Sync), Just(ExecutionMode::Async)]),
        rate_limit in (any::<bool>(), rate(), prop::option::of(text()), btree_map(key(), rate(), 0..3)),
        providers in btree_map(key(), provider(), 0..3),
        telemetry in (any::<bool>(), text(), prop_oneof![Just(TelemetryExporter::None), Just(TelemetryExporter::Console), Just(TelemetryExporter::Otlp)], prop::option::of(url()), 0.0f64..=1.0, btree_map("[A-Za-z0-9._-]{1,16}", header_value(), 0..3)),
        log in (prop_oneof![Just(LogFormat::Text), Just(LogFormat::Json)], text().prop_filter("a level", |l| !l.trim().is_empty())),
        sessions in (any::<u64>(), any::<usize>(), any::<usize>()),
    ) -> GatewayConfig {
        let mut config = GatewayConfig { timezone: timezone.to_string(), ..GatewayConfig::default() };
        config.context = context.into_iter().collect();
        (config.server.host, config.server.port, config.server.workers, config.server.public_url, config.server.shutdown_timeout_s) = server;
        (config.model.default, config.model.temperature, config.model.max_tokens, config.model.fallback, config.model.api_base, config.model.without_key) = model;
        let g = &mut config.guardrails;
        (g.max_tool_calls, g.max_iterations, g.timeout_ms, g.max_delegation_depth, g.max_parallel_tool_calls, g.max_tool_output_chars, g.approval_timeout_ms) = guardrails;
        (config.auth.enabled, config.auth.api_keys, config.auth.public_paths, config.auth.mode) = auth;
        let p = &mut config.persistence;
        (p.enabled, p.backend, p.url, p.db_schema) = persistence;
        let q = &mut config.queue;
        (q.backend, q.redis_url, q.workers, q.drain_timeout_s, q.default_execution_mode) = queue;
        let r = &mut config.rate_limit;
        (r.enabled, r.default_limit, r.storage_uri, r.routes) = rate_limit;
        config.providers = providers;
        let t = &mut config.telemetry;
        (t.enabled, t.service_name, t.exporter, t.endpoint, t.sample_rate, t.headers) = telemetry;
        (config.log.format, config.log.level) = log;
        (config.sessions.ttl_seconds, config.sessions.max_sessions, config.sessions.max_messages) = sessions;
        config
    }
}

// 256 cases (proptest's default; `PROPTEST_CASES` raises it).
proptest! {
    #[test]
    fn a_configuration_written_as_yaml_reads_back_the_same(config in config()) {
        let yaml = serde_saphyr::to_string(&config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let loaded = GatewayConfig::from_yaml(Path::new("gateway.yaml"), &yaml, &BTreeMap::new());
        let problems: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        prop_assert!(problems.is_empty(), "{problems:#?}\n{yaml}");
        prop_assert_eq!(loaded.config.as_ref(), Some(&config), "{}", yaml);
    }
}
