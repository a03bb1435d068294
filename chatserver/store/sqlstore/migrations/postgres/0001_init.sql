-- Parley schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql.
-- Times are unix microseconds (BIGINT) so both engines order them the same way.
-- Text keys use COLLATE "C" so ORDER BY matches SQLite's byte order whatever the
-- database's default collation is (and so prefix LIKE can use the index).

CREATE TABLE users (
    id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    username           TEXT COLLATE "C" NOT NULL UNIQUE,
    email              TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name       TEXT   NOT NULL,
    password_hash      TEXT   NOT NULL,
    created_at         BIGINT NOT NULL,
    tokens_valid_after BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  TEXT COLLATE "C" NOT NULL,
    parent_id  TEXT COLLATE "C" NOT NULL DEFAULT '',
    token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE conversations (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    kind          TEXT   NOT NULL CHECK (kind IN ('direct', 'group')),
    title_sealed  TEXT   NOT NULL DEFAULT '',
    direct_key    TEXT COLLATE "C" UNIQUE, -- NULL for groups: NULLs never collide
    created_by    TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    created_at    BIGINT NOT NULL,
    last_seq      BIGINT NOT NULL DEFAULT 0,
    last_activity BIGINT NOT NULL
);

CREATE TABLE members (
    conversation_id TEXT COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at       BIGINT NOT NULL,
    read_seq        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_user ON members (user_id, conversation_id);

CREATE TABLE messages (
    conversation_id TEXT COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    id              TEXT COLLATE "C" NOT NULL UNIQUE,
    sender_id       TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    client_id       TEXT COLLATE "C", -- NULL when the sender gave no idempotency key
    body_sealed     TEXT   NOT NULL,
    key_id          TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_client ON messages (conversation_id, sender_id, client_id);

CREATE TABLE audit_log (
    seq       BIGINT NOT NULL PRIMARY KEY,
    at        BIGINT NOT NULL,
    event     TEXT   NOT NULL,
    actor_id  TEXT   NOT NULL,
    subject   TEXT   NOT NULL,
    ip        TEXT   NOT NULL,
    detail    TEXT   NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);

-- The chain's head: one row, locked by every append.
CREATE TABLE audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

-- Append-only, enforced by the database and not only by the code.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'audit_head only moves forward (% refused)', TG_OP;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

CREATE TABLE seal_counts (
    key_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    sealed BIGINT NOT NULL
);
