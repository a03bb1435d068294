-- Attachments (issue 13). Keep in step with ../postgres/0006_attachments.sql.
--
-- One row per uploaded file. Its bytes live in the blob store, sealed
-- (package blob/sealed): blob_key is the sealed file, thumb_key its sealed
-- thumbnail ('' when none). An attachment is 'uploading' while its bytes
-- stream in, 'ready' once stored (its owner may attach it), 'attached' once a
-- message carries it (conversation_id, message_id, position set), and
-- 'deleted' once its message, conversation or owner is gone or the upload was
-- abandoned: the background purger then deletes its blobs, then the row.
-- No foreign keys on conversation_id and message_id: a deleted conversation's
-- attachments must outlive it until their blobs are gone.
CREATE TABLE attachments (
    id                TEXT NOT NULL PRIMARY KEY,
    owner_id          TEXT NOT NULL REFERENCES users (id),
    state             TEXT   NOT NULL,
    conversation_id   TEXT,
    message_id        TEXT,
    position          INTEGER NOT NULL DEFAULT 0,
    name              TEXT   NOT NULL, -- sanitised display name, never a path
    content_type      TEXT   NOT NULL DEFAULT '', -- sniffed by the server
    size              INTEGER NOT NULL DEFAULT 0, -- plaintext bytes (quota)
    stored_size       INTEGER NOT NULL DEFAULT 0, -- sealed bytes in the store
    key_id            TEXT   NOT NULL DEFAULT '', -- data key of the sealed file ('' before it is stored)
    blob_key          TEXT   NOT NULL,
    thumb_key         TEXT   NOT NULL DEFAULT '',
    thumb_stored_size INTEGER NOT NULL DEFAULT 0,
    width             INTEGER NOT NULL DEFAULT 0,
    height            INTEGER NOT NULL DEFAULT 0,
    duration_ms       INTEGER NOT NULL DEFAULT 0,
    preview           BLOB, -- tiny blurred image, a few hundred bytes
    created_at        INTEGER NOT NULL,
    attached_at       INTEGER
);
CREATE INDEX attachments_message ON attachments (message_id, position) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_owner ON attachments (owner_id, state);
CREATE INDEX attachments_conversation ON attachments (conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX attachments_collect ON attachments (state, created_at);
CREATE INDEX attachments_key ON attachments (key_id);
