-- End-to-end encrypted conversations with MLS (issue 17): the server is the
-- MLS Delivery Service. Keep in step with ../postgres/0010_mls.sql.
--
-- Every MLS byte string kept here (KeyPackages, commits, Welcomes) is
-- already ciphertext or public key material; it is still sealed with the
-- keyring like message bodies (*_sealed, key_id), which protects the
-- metadata inside the clear MLS headers at rest.

-- e2ee is fixed at creation (0 or 1); mls_epoch is the group's current epoch
-- as the server ordered it: a commit is accepted only for this epoch, and
-- moves it forward by one in the same statement (compare-and-set).
ALTER TABLE conversations ADD COLUMN e2ee INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN mls_epoch INTEGER NOT NULL DEFAULT 0;

-- A message of an e2ee conversation holds an MLS PrivateMessage (sealed in
-- body_sealed) instead of text: mls = 1.
ALTER TABLE messages ADD COLUMN mls INTEGER NOT NULL DEFAULT 0;

-- A user's devices: each an MLS client with its own Ed25519 signature key
-- (32 bytes, base64), unique across users.
CREATE TABLE mls_devices (
    id            TEXT NOT NULL PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT   NOT NULL,
    signature_key TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX mls_devices_user ON mls_devices (user_id, id);

-- KeyPackages per device, by KeyPackageRef (hex). A claim hands an
-- unclaimed one out once (claimed_at set, package_sealed emptied); the row
-- stays so a Welcome naming its ref finds the device. A last-resort package
-- (last_resort = 1) is handed out when none is left, and never consumed.
CREATE TABLE mls_key_packages (
    ref            TEXT NOT NULL PRIMARY KEY,
    device_id      TEXT NOT NULL REFERENCES mls_devices (id) ON DELETE CASCADE,
    last_resort    INTEGER NOT NULL DEFAULT 0,
    package_sealed TEXT   NOT NULL,
    key_id         TEXT   NOT NULL,
    not_after      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    claimed_at     INTEGER
) STRICT;
CREATE INDEX mls_key_packages_device ON mls_key_packages (device_id, last_resort, claimed_at, created_at);

-- Commits, in their conversation's seq order (the counter messages and
-- change events use). epoch is the group's epoch after the commit.
CREATE TABLE mls_commits (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    epoch           INTEGER NOT NULL,
    sender_id       TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    commit_sealed   TEXT   NOT NULL,
    key_id          TEXT   NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) STRICT;

-- Welcomes waiting for their device: one per device and conversation (a
-- newer one replaces it). seq and epoch are those of the commit.
CREATE TABLE mls_welcomes (
    device_id       TEXT NOT NULL REFERENCES mls_devices (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    epoch           INTEGER NOT NULL,
    welcome_sealed  TEXT   NOT NULL,
    key_id          TEXT   NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (device_id, conversation_id)
) STRICT;
CREATE INDEX mls_welcomes_conversation ON mls_welcomes (conversation_id);
