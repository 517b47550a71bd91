ALTER TABLE images
    DROP KEY images_notify_pending,
    DROP COLUMN notify_pending;
