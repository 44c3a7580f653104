-- Store certificates issued by any hub process (`POST /v1/enroll`,
-- `POST /v1/renew`), so `tally-hub revoke --database` at any host finds
-- every certificate of a store, not only those its own data directory
-- recorded.
CREATE TABLE hub_issued (
    serial    text COLLATE "C" PRIMARY KEY,
    store     text COLLATE "C" NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hub_issued_by_store ON hub_issued (store);
