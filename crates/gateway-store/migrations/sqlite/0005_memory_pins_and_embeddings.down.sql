DROP INDEX ix_memories_agent_updated;
ALTER TABLE memories DROP COLUMN embedding;
ALTER TABLE memories DROP COLUMN pinned;
