-- One-time enrollment codes every hub process over the database can
-- redeem, once: `tally-hub enroll-code --database` keeps a code's SHA-256
-- here; the first redemption deletes it (`DELETE … RETURNING`), so two
-- hub processes racing on one code cannot both issue a certificate.
CREATE TABLE hub_enroll_codes (
    hash       bytea PRIMARY KEY,
    store      text COLLATE "C" NOT NULL,
    expires_ms bigint NOT NULL
);
CREATE INDEX hub_enroll_codes_by_expiry ON hub_enroll_codes (expires_ms);
