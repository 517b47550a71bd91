-- notify_pending: see the MySQL migration.
ALTER TABLE images ADD COLUMN notify_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX images_notify_pending ON images (notify_pending, updated_at);
