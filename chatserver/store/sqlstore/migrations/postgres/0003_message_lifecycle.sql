-- Message lifecycle (issue 11): edits, tombstones, replies, expiry, reactions,
-- and change events that share their conversation's seq counter with
-- messages. Keep in step with ../sqlite/0003_message_lifecycle.sql.

-- A tombstone keeps its row and seq; its body_sealed and key_id are emptied.
ALTER TABLE messages ADD COLUMN reply_to TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN edited_at BIGINT;
ALTER TABLE messages ADD COLUMN deleted_at BIGINT;
ALTER TABLE messages ADD COLUMN deleted_by TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN delete_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN expires_at BIGINT;
-- The purger reads live messages by expiry time.
CREATE INDEX messages_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;

ALTER TABLE conversations ADD COLUMN expire_after BIGINT NOT NULL DEFAULT 0;

-- One row per change event; (conversation_id, seq) never collides with a
-- message's because both take their seq from conversations.last_seq.
-- No message text here: frames are built from the message's current state.
CREATE TABLE conversation_events (
    conversation_id TEXT COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('edited', 'deleted', 'expired', 'reaction', 'settings')),
    message_id      TEXT COLLATE "C" NOT NULL,
    actor_id        TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

CREATE TABLE reactions (
    message_id TEXT COLLATE "C" NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji      TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- Work done by one replica at a time (the expiry purger) holds a lease here.
CREATE TABLE leases (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at BIGINT NOT NULL
);
