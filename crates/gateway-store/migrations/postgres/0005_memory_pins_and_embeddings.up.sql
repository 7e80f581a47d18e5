ALTER TABLE memories ADD COLUMN pinned BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE memories ADD COLUMN embedding JSONB;
CREATE INDEX ix_memories_agent_updated ON memories (agent_id, updated_at);
