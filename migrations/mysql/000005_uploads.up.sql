-- sha256: the original's SHA-256, computed as it is received (NULL for
-- images stored before it was); dedupe looks it up per user.
ALTER TABLE images
    ADD COLUMN sha256 CHAR(64) NULL,
    ADD KEY images_user_sha256 (user_id, sha256);

-- The responses of requests made with an Idempotency-Key, per user, for a
-- day: a repeat gets the first response instead of a second image.
CREATE TABLE idempotency_keys (
    user_id     CHAR(36)     NOT NULL,
    idem_key    VARCHAR(255) NOT NULL,
    fingerprint CHAR(64)     NOT NULL,
    state       VARCHAR(16)  NOT NULL,
    status_code INT          NOT NULL DEFAULT 0,
    body        MEDIUMBLOB   NULL,
    location    VARCHAR(512) NULL,
    created_at  DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    KEY idempotency_keys_created (created_at),
    CONSTRAINT idempotency_keys_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Uploads that go straight to S3 (a presigned PUT or a multipart upload)
-- or through tus, until they become an image or expire. id is the image's
-- id to be; object_key is where the bytes land.
CREATE TABLE uploads (
    id           CHAR(36)     NOT NULL,
    user_id      CHAR(36)     NOT NULL,
    kind         VARCHAR(16)  NOT NULL,
    state        VARCHAR(16)  NOT NULL,
    filename     VARCHAR(255) NOT NULL DEFAULT '',
    content_type VARCHAR(64)  NOT NULL DEFAULT '',
    bytes        BIGINT       NOT NULL,
    part_size    BIGINT       NOT NULL DEFAULT 0,
    object_key   VARCHAR(512) NOT NULL,
    s3_upload_id VARCHAR(1024) NULL,
    created_at   DATETIME(6)  NOT NULL,
    expires_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY uploads_user (user_id, created_at),
    KEY uploads_state_expires (state, expires_at),
    CONSTRAINT uploads_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
