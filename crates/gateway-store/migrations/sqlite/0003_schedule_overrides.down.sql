ALTER TABLE schedules DROP COLUMN overrides;
