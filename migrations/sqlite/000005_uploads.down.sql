DROP TABLE uploads;
DROP TABLE idempotency_keys;
DROP INDEX images_user_sha256;
ALTER TABLE images DROP COLUMN sha256;
