-- Account deletion and export (issue 11, GDPR). Keep in step with
-- ../sqlite/0004_account_deletion.sql.

-- A deleted account keeps its row (messages, members, audit entries refer
-- to its id) but is anonymised: deleted_at is set when it is; purged_at
-- when its messages, reactions and group memberships have been removed.
ALTER TABLE users ADD COLUMN deleted_at BIGINT;
ALTER TABLE users ADD COLUMN purged_at BIGINT;
CREATE INDEX users_purge ON users (deleted_at) WHERE deleted_at IS NOT NULL AND purged_at IS NULL;

-- Deletion and export read a user's messages and reactions.
CREATE INDEX messages_sender ON messages (sender_id, conversation_id, seq);
CREATE INDEX reactions_user ON reactions (user_id, message_id, emoji);
