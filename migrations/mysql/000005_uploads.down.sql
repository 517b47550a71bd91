DROP TABLE uploads;
DROP TABLE idempotency_keys;
ALTER TABLE images DROP KEY images_user_sha256, DROP COLUMN sha256;
