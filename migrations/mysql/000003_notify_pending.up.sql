-- notify_pending: the image reached done or failed and its notification
-- (webhook events) has not been recorded yet. Set with the status change,
-- cleared once the notifier has it; the reconciler notifies whatever stays
-- pending (a notification that failed after the task's last retry).
ALTER TABLE images
    ADD COLUMN notify_pending BOOLEAN NOT NULL DEFAULT FALSE,
    ADD KEY images_notify_pending (notify_pending, updated_at);
