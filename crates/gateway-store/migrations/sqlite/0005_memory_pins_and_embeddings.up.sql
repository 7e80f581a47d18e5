ALTER TABLE memories ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memories ADD COLUMN embedding TEXT;
CREATE INDEX ix_memories_agent_updated ON memories (agent_id, updated_at);
