ALTER TABLE executions DROP COLUMN trace_id;
