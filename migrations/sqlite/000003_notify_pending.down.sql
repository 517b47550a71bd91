DROP INDEX images_notify_pending;
ALTER TABLE images DROP COLUMN notify_pending;
