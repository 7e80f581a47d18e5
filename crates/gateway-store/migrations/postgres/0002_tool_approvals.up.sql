-- Version 2: tool calls waiting for a person's decision (`permissions.require_approval`).
CREATE TABLE tool_approvals (
    id TEXT PRIMARY KEY NOT NULL,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    tool_name TEXT NOT NULL,
    call_id TEXT NOT NULL DEFAULT '',
    arguments JSONB,
    status TEXT NOT NULL DEFAULT 'pending',
    reason TEXT,
    decided_by TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    decided_at TIMESTAMPTZ
);
CREATE INDEX ix_tool_approvals_execution_id ON tool_approvals (execution_id, status);
