-- Membership version (issue 15). Keep in step with ../sqlite/0009_members_version.sql.
--
-- Every change of a conversation's members (add, remove) raises its
-- members_version in the same transaction, before touching members, so it
-- takes the conversation's row lock first, as a send does. A send reads the
-- version when it takes its seq: a replica's cached member list is the one
-- in force at that seq exactly when its version is equal.
ALTER TABLE conversations ADD COLUMN members_version BIGINT NOT NULL DEFAULT 0;
