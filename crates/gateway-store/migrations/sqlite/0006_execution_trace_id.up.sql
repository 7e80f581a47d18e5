ALTER TABLE executions ADD COLUMN trace_id TEXT;
