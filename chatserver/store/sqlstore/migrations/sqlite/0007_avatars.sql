-- Profile photos (issue 12). Keep in step with ../postgres/0007_avatars.sql.
--
-- A user's photo is a 256×256 JPEG sealed in the blob store (package
-- avatars); the user's row names it. avatar_version is random and new with
-- every photo ('' = none): clients refetch when it changes. avatar_key_id is
-- the data key the blob is sealed with (re-encryption and SealedCounts),
-- avatar_stored its sealed size.
ALTER TABLE users ADD COLUMN avatar_version TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN avatar_key TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN avatar_key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN avatar_stored INTEGER NOT NULL DEFAULT 0;
CREATE INDEX users_avatar_key_id ON users (avatar_key_id) WHERE avatar_key_id <> '';
