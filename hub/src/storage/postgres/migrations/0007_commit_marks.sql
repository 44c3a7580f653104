-- A random token each writing batch inserts in its own transaction (and
-- the process's next batch deletes): when a COMMIT gets no answer, the
-- hub looks for it on a new connection to learn whether the batch
-- committed (storage/postgres/unknown_commit.rs). About one row per hub
-- process.
CREATE TABLE hub_commit_marks (
    token uuid PRIMARY KEY
);
