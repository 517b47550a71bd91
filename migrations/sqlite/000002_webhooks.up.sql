CREATE TABLE webhook_subscriptions (
    id                    TEXT NOT NULL PRIMARY KEY,
    user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url                   TEXT NOT NULL,
    events                TEXT NOT NULL,
    secret                TEXT NOT NULL,
    previous_secret       TEXT NULL,
    previous_secret_until DATETIME NULL,
    disabled_at           DATETIME NULL,
    disabled_reason       TEXT NULL,
    failing_since         DATETIME NULL,
    created_at            DATETIME NOT NULL
);
CREATE INDEX webhook_subscriptions_user ON webhook_subscriptions (user_id, created_at);

CREATE TABLE webhook_events (
    id         TEXT NOT NULL PRIMARY KEY,
    user_id    TEXT NOT NULL,
    image_id   TEXT NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE INDEX webhook_events_image ON webhook_events (image_id);

CREATE TABLE webhook_deliveries (
    id              TEXT NOT NULL PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NULL,
    last_attempt_at DATETIME NULL,
    next_attempt_at DATETIME NULL,
    created_at      DATETIME NOT NULL
);
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, created_at);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
