CREATE TABLE users (
    id            CHAR(36)     NOT NULL,
    email         VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    role          VARCHAR(16)  NOT NULL DEFAULT 'user',
    created_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE refresh_tokens (
    token_hash CHAR(64)    NOT NULL,
    user_id    CHAR(36)    NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    revoked_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (token_hash),
    KEY refresh_tokens_user (user_id),
    CONSTRAINT refresh_tokens_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE images (
    id            CHAR(36)     NOT NULL,
    user_id       CHAR(36)     NOT NULL,
    status        VARCHAR(16)  NOT NULL,
    filename      VARCHAR(255) NOT NULL DEFAULT '',
    content_type  VARCHAR(64)  NOT NULL,
    bytes         BIGINT       NOT NULL,
    width         INT          NOT NULL,
    height        INT          NOT NULL,
    attempt       INT          NOT NULL DEFAULT 0,
    lease_until   DATETIME(6)  NULL,
    error_code    VARCHAR(64)  NULL,
    error_message VARCHAR(512) NULL,
    created_at    DATETIME(6)  NOT NULL,
    updated_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY images_user_created (user_id, created_at, id),
    KEY images_status_updated (status, updated_at),
    CONSTRAINT images_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE image_variants (
    image_id     CHAR(36)     NOT NULL,
    name         VARCHAR(32)  NOT NULL,
    width        INT          NOT NULL,
    height       INT          NOT NULL,
    bytes        BIGINT       NOT NULL,
    content_type VARCHAR(64)  NOT NULL,
    object_key   VARCHAR(512) NOT NULL,
    PRIMARY KEY (image_id, name),
    CONSTRAINT image_variants_image_fk FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
