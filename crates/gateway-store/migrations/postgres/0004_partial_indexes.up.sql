-- Version 4: the indexes on columns that most executions leave empty (a plain invoke has no
-- session, user, schedule or parent) hold only the executions that have a value: every
-- insert no longer writes five index entries nobody looks up. A lookup by value
-- (`session_id = $1`) still uses them.
DROP INDEX ix_executions_session_id;
CREATE INDEX ix_executions_session_id ON executions (session_id) WHERE session_id IS NOT NULL;
DROP INDEX ix_executions_user_id;
CREATE INDEX ix_executions_user_id ON executions (user_id) WHERE user_id IS NOT NULL;
DROP INDEX ix_executions_schedule_id;
CREATE INDEX ix_executions_schedule_id ON executions (schedule_id) WHERE schedule_id IS NOT NULL;
DROP INDEX ix_executions_parent_execution_id;
CREATE INDEX ix_executions_parent_execution_id ON executions (parent_execution_id) WHERE parent_execution_id IS NOT NULL;
DROP INDEX ix_executions_root_execution_id;
CREATE INDEX ix_executions_root_execution_id ON executions (root_execution_id) WHERE root_execution_id IS NOT NULL;
