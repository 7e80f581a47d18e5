DROP TABLE IF EXISTS tool_approvals;
