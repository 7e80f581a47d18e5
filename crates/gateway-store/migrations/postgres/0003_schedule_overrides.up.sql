-- Version 3: runtime edits of schedules (cron, message, timezone, enabled, instructions),
-- kept apart from what AGENT.md says so file changes still apply to fields never edited.
ALTER TABLE schedules ADD COLUMN overrides JSONB;
