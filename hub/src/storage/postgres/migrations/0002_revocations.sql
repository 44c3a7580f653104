-- Revoked store certificates, where every hub process over the database
-- sees them: `tally-hub revoke --database` inserts and NOTIFYs
-- tally_revocations (the serial); each hub process LISTENs and refuses
-- the serial from its next request on.
CREATE TABLE hub_revocations (
    serial     text COLLATE "C" PRIMARY KEY,
    store      text COLLATE "C" NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
