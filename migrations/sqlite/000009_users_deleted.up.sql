-- deleted_at: see the MySQL migration.
ALTER TABLE users ADD COLUMN deleted_at DATETIME NULL;
CREATE INDEX users_deleted ON users (deleted_at);
