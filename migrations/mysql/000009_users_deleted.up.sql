-- deleted_at: the account is being deleted (DELETE /v1/account). From then
-- on its logins, refresh tokens and access tokens are refused; its images,
-- objects and other rows are removed, and the user's row goes last, so
-- that a removal that stopped half-way is found here and finished.
ALTER TABLE users
    ADD COLUMN deleted_at DATETIME(6) NULL,
    ADD KEY users_deleted (deleted_at);
