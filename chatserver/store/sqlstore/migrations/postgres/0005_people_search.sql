-- People search (issue 12): display name and username, substring,
-- case-insensitive. Keep in step with ../sqlite/0005_people_search.sql.

-- pg_trgm ships with PostgreSQL (contrib; in Debian's postgresql package)
-- and is a trusted extension since PostgreSQL 13: the database's owner, or
-- any role with CREATE on the database, may create it without superuser.
-- A role without that right fails here; a superuser can run this one
-- statement beforehand, after which IF NOT EXISTS makes it a no-op.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- display_fold is the display name lower-cased by the server (Go's Unicode
-- case mapping, the same on both engines; see store.FoldName), written with
-- every display name. This backfill uses lower(), whose folding depends on
-- the database's LC_CTYPE; the server re-folds every name in Go right after
-- this migration, in its transaction (sqlstore/migrate.go). A user created
-- by an older release during a rolling update gets '' and is found by
-- username only until their display name is next written.
ALTER TABLE users ADD COLUMN display_fold TEXT COLLATE "C" NOT NULL DEFAULT '';
UPDATE users SET display_fold = lower(display_name);

-- Substring search (LIKE '%q%') on both columns; prefix search (queries
-- under 3 characters, too short for trigrams) uses the B-trees: usernames
-- have their unique index, display names get one here. COLLATE "C" lets a
-- range scan serve a prefix and orders bytes as SQLite does.
CREATE INDEX users_username_trgm ON users USING gin (username gin_trgm_ops);
CREATE INDEX users_display_fold_trgm ON users USING gin (display_fold gin_trgm_ops);
CREATE INDEX users_display_fold ON users (display_fold);
