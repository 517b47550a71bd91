-- See the MySQL migration.
ALTER TABLE images ADD COLUMN sha256 TEXT NULL;
CREATE INDEX images_user_sha256 ON images (user_id, sha256);

CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idem_key    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,
    status_code INTEGER NOT NULL DEFAULT 0,
    body        BLOB NULL,
    location    TEXT NULL,
    created_at  DATETIME NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE uploads (
    id           TEXT NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    filename     TEXT NOT NULL DEFAULT '',
    content_type TEXT NOT NULL DEFAULT '',
    bytes        INTEGER NOT NULL,
    part_size    INTEGER NOT NULL DEFAULT 0,
    object_key   TEXT NOT NULL,
    s3_upload_id TEXT NULL,
    created_at   DATETIME NOT NULL,
    expires_at   DATETIME NOT NULL
);
CREATE INDEX uploads_user ON uploads (user_id, created_at);
CREATE INDEX uploads_state_expires ON uploads (state, expires_at);
