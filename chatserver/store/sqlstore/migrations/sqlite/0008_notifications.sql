-- Notifications (issue 14): Web Push subscriptions, the push outbox, mute,
-- do-not-disturb and mentions. Keep in step with ../postgres/0008_notifications.sql.

-- One row per browser (device) subscription. endpoint is the push service's
-- URL for it, unique: a browser that subscribes again, for this account or
-- another one, replaces its row. p256dh and auth are the subscription's keys
-- (base64url) that RFC 8291 encrypts to; vapid_key_id the VAPID key that was
-- active when it was made (a subscription only works with that key).
CREATE TABLE push_subscriptions (
    id           TEXT NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint     TEXT NOT NULL UNIQUE,
    p256dh       TEXT NOT NULL,
    auth         TEXT NOT NULL,
    vapid_key_id TEXT NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

-- The push outbox: one row per new message that some other member could be
-- pushed about (written in the message's transaction), due after the grace
-- period. A replica claims due rows by setting claimed_by/claim_until (a
-- lease: a replica that dies mid-push leaves its rows to be claimed again
-- when it lapses), sends, then deletes them. No message text here.
CREATE TABLE push_jobs (
    message_id      TEXT NOT NULL PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    sender_id       TEXT NOT NULL,
    stored_at       INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    claimed_by      TEXT NOT NULL DEFAULT '',
    claim_until     INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX push_jobs_due ON push_jobs (due_at);

-- Mute per member (unix microseconds; 0: not muted).
ALTER TABLE members ADD COLUMN muted_until INTEGER NOT NULL DEFAULT 0;

-- Per-user notification settings: message text in pushes (opt-in), whether a
-- mention breaks a mute, do-not-disturb until (unix microseconds; 0: off).
ALTER TABLE users ADD COLUMN push_preview INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mentions_break_mute INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN dnd_until INTEGER NOT NULL DEFAULT 0;

-- Users mentioned in a message (space-separated user ids), parsed by the
-- server from the text as sent.
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '';
