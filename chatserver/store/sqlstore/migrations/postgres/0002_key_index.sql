-- Re-encryption looks messages up by the data key that sealed them.
CREATE INDEX messages_key ON messages (key_id);
