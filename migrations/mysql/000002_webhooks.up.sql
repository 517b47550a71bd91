CREATE TABLE webhook_subscriptions (
    id                    CHAR(36)      NOT NULL,
    user_id               CHAR(36)      NOT NULL,
    url                   VARCHAR(2048) NOT NULL,
    events                VARCHAR(255)  NOT NULL,
    secret                VARCHAR(128)  NOT NULL,
    previous_secret       VARCHAR(128)  NULL,
    previous_secret_until DATETIME(6)   NULL,
    disabled_at           DATETIME(6)   NULL,
    disabled_reason       VARCHAR(255)  NULL,
    failing_since         DATETIME(6)   NULL,
    created_at            DATETIME(6)   NOT NULL,
    PRIMARY KEY (id),
    KEY webhook_subscriptions_user (user_id, created_at),
    CONSTRAINT webhook_subscriptions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE webhook_events (
    id         VARCHAR(64) NOT NULL,
    user_id    CHAR(36)    NOT NULL,
    image_id   CHAR(36)    NOT NULL,
    type       VARCHAR(32) NOT NULL,
    payload    MEDIUMTEXT  NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY webhook_events_image (image_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE webhook_deliveries (
    id              VARCHAR(64)  NOT NULL,
    event_id        VARCHAR(64)  NOT NULL,
    subscription_id CHAR(36)     NOT NULL,
    event_type      VARCHAR(32)  NOT NULL,
    state           VARCHAR(16)  NOT NULL,
    attempts        INT          NOT NULL DEFAULT 0,
    last_status     INT          NOT NULL DEFAULT 0,
    last_error      VARCHAR(512) NULL,
    last_attempt_at DATETIME(6)  NULL,
    next_attempt_at DATETIME(6)  NULL,
    created_at      DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY webhook_deliveries_subscription (subscription_id, created_at),
    KEY webhook_deliveries_due (state, next_attempt_at),
    CONSTRAINT webhook_deliveries_event_fk FOREIGN KEY (event_id) REFERENCES webhook_events (id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_subscription_fk FOREIGN KEY (subscription_id) REFERENCES webhook_subscriptions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
