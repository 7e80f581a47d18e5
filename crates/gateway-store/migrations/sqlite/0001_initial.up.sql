-- Agent Gateway schema, version 1 (SQLite). Tables and columns follow agents-gateway 0.2.13;
-- `instance_id` and `gateway_instances` are ours (finding work left behind by a dead process).
CREATE TABLE executions (
    id TEXT PRIMARY KEY NOT NULL,
    agent_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    message TEXT NOT NULL DEFAULT '',
    input TEXT,
    options TEXT,
    result TEXT,
    usage TEXT,
    error TEXT,
    session_id TEXT,
    user_id TEXT,
    schedule_id TEXT,
    schedule_name TEXT,
    parent_execution_id TEXT,
    root_execution_id TEXT,
    delegation_depth INTEGER NOT NULL DEFAULT 0,
    instance_id TEXT,
    started_at TEXT,
    completed_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX ix_executions_agent_id ON executions (agent_id);
CREATE INDEX ix_executions_session_id ON executions (session_id);
CREATE INDEX ix_executions_user_id ON executions (user_id);
CREATE INDEX ix_executions_schedule_id ON executions (schedule_id);
CREATE INDEX ix_executions_parent_execution_id ON executions (parent_execution_id);
CREATE INDEX ix_executions_root_execution_id ON executions (root_execution_id);
CREATE INDEX ix_executions_created_at ON executions (created_at);
CREATE INDEX ix_executions_status ON executions (status);

CREATE TABLE execution_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step_type TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    data TEXT,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX ix_execution_steps_execution_id ON execution_steps (execution_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    actor TEXT,
    resource_type TEXT,
    resource_id TEXT,
    metadata TEXT,
    ip_address TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX ix_audit_log_event_type ON audit_log (event_type);
CREATE INDEX ix_audit_log_created_at ON audit_log (created_at);

CREATE TABLE schedules (
    id TEXT PRIMARY KEY NOT NULL,
    agent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    cron_expr TEXT NOT NULL,
    message TEXT NOT NULL,
    instructions TEXT,
    input TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    source TEXT NOT NULL DEFAULT 'workspace',
    last_run_at TEXT,
    next_run_at TEXT,
    deleted_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX ix_schedules_agent_id ON schedules (agent_id);
CREATE INDEX ix_schedules_next_run ON schedules (next_run_at);

CREATE TABLE users (
    user_id TEXT PRIMARY KEY NOT NULL,
    display_name TEXT,
    email TEXT,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    first_seen_at TEXT,
    last_seen_at TEXT
);

CREATE TABLE conversations (
    conversation_id TEXT PRIMARY KEY NOT NULL,
    agent_id TEXT NOT NULL,
    user_id TEXT,
    title TEXT,
    summary TEXT,
    message_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX ix_conversations_user_agent ON conversations (user_id, agent_id);
CREATE INDEX ix_conversations_user ON conversations (user_id);
CREATE INDEX ix_conversations_created_at ON conversations (created_at);

CREATE TABLE conversation_messages (
    message_id TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX ix_conv_messages_conv_id ON conversation_messages (conversation_id, seq);

CREATE TABLE memories (
    id TEXT PRIMARY KEY NOT NULL,
    agent_id TEXT NOT NULL,
    user_id TEXT,
    content TEXT NOT NULL,
    memory_type TEXT NOT NULL DEFAULT 'semantic',
    source TEXT NOT NULL DEFAULT 'manual',
    importance REAL NOT NULL DEFAULT 0.5,
    access_count INTEGER NOT NULL DEFAULT 0,
    last_accessed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX ix_memories_agent_user ON memories (agent_id, user_id);
CREATE INDEX ix_memories_agent_id ON memories (agent_id);

CREATE TABLE user_agent_configs (
    user_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    instructions TEXT,
    config_values TEXT NOT NULL DEFAULT '{}',
    encrypted_secrets TEXT NOT NULL DEFAULT '{}',
    setup_completed INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, agent_id)
);
CREATE INDEX ix_user_agent_configs_agent_id ON user_agent_configs (agent_id);

CREATE TABLE user_schedules (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    cron_expr TEXT NOT NULL,
    message TEXT NOT NULL,
    instructions TEXT,
    input TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    notify TEXT,
    last_run_at TEXT,
    next_run_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX ix_user_schedules_user_id ON user_schedules (user_id);
CREATE INDEX ix_user_schedules_user_agent ON user_schedules (user_id, agent_id);

CREATE TABLE notification_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    payload TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX ix_notification_log_execution_id ON notification_log (execution_id);
CREATE INDEX ix_notification_log_agent_id ON notification_log (agent_id);
CREATE INDEX ix_notification_log_status ON notification_log (status);

CREATE TABLE mcp_servers (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    transport TEXT NOT NULL,
    command TEXT,
    args TEXT,
    encrypted_env TEXT,
    url TEXT,
    headers TEXT,
    encrypted_headers TEXT,
    encrypted_credentials TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE gateway_instances (
    id TEXT PRIMARY KEY NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
