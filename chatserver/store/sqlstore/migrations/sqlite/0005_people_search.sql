-- People search (issue 12): display name and username, substring,
-- case-insensitive. Keep in step with ../postgres/0005_people_search.sql.

-- display_fold is the display name lower-cased by the server (Go's Unicode
-- case mapping, the same on both engines; see store.FoldName), written with
-- every display name. This backfill uses SQLite's lower(), which folds ASCII
-- only; the server re-folds the other names in Go right after this
-- migration, in its transaction (sqlstore/migrate.go). A user created by an
-- older release during a rolling update gets '' and is found by username
-- only until their display name is next written.
ALTER TABLE users ADD COLUMN display_fold TEXT NOT NULL DEFAULT '';
UPDATE users SET display_fold = lower(display_name);
-- Prefix search (queries under 3 characters) on display names; usernames
-- have their unique index.
CREATE INDEX users_display_fold ON users (display_fold);

-- Substring search: an FTS5 table with the trigram tokenizer over username
-- and display_fold, kept in step by triggers. Its rowid is
-- user_search_keys.n, an INTEGER PRIMARY KEY, because users' own rowid is
-- not stable (VACUUM may renumber a table without an INTEGER PRIMARY KEY).
CREATE TABLE user_search_keys (
    n       INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE
);
CREATE VIRTUAL TABLE users_search USING fts5(username, display_fold, tokenize = 'trigram');
-- Deleted index entries are removed from the index's pages, not only marked
-- (a deleted account's old display name must not linger; see secure_delete
-- on the connection for ordinary tables).
INSERT INTO users_search (users_search, rank) VALUES ('secure-delete', 1);

INSERT INTO user_search_keys (user_id) SELECT id FROM users ORDER BY created_at, id;
INSERT INTO users_search (rowid, username, display_fold)
    SELECT k.n, u.username, u.display_fold FROM users u JOIN user_search_keys k ON k.user_id = u.id;

CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO user_search_keys (user_id) VALUES (NEW.id);
    INSERT INTO users_search (rowid, username, display_fold)
        VALUES ((SELECT n FROM user_search_keys WHERE user_id = NEW.id), NEW.username, NEW.display_fold);
END;
CREATE TRIGGER users_search_update AFTER UPDATE OF username, display_fold ON users BEGIN
    DELETE FROM users_search WHERE rowid = (SELECT n FROM user_search_keys WHERE user_id = OLD.id);
    INSERT INTO users_search (rowid, username, display_fold)
        VALUES ((SELECT n FROM user_search_keys WHERE user_id = NEW.id), NEW.username, NEW.display_fold);
END;
CREATE TRIGGER users_search_delete BEFORE DELETE ON users BEGIN
    DELETE FROM users_search WHERE rowid = (SELECT n FROM user_search_keys WHERE user_id = OLD.id);
END;
