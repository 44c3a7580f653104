-- Tally hub schema, version 1: everything the embedded hub keeps, as
-- tables a PostgreSQL DBA can read. Integers are bigint (the hub's u64s,
-- checked both ways); counters and events are the postcard bytes the
-- embedded hub stores (one codec, tally_sync::codec); the hub's records
-- are JSON (jsonb), as in the embedded hub's own tables. Text keys
-- compare bytewise (COLLATE "C"), as the embedded hub's keys do, so
-- pages by id come in the same order whatever the database's locale.

-- Named sequences the hub hands out in commit order (see storage/postgres).
CREATE TABLE hub_sequences (
    name  text COLLATE "C" PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO hub_sequences (name, value) VALUES
    ('catalog', 0), ('exceptions', 0), ('allocations', 0);

-- One row per location ever touched: its counters' change stamp (the
-- cursor a store's delta is read from).
CREATE TABLE hub_locations (
    location        text COLLATE "C" PRIMARY KEY,
    counter_version bigint NOT NULL DEFAULT 0
);

-- The escrow counters: (location, item) -> counter, with the version it
-- last changed at (per location) and the hub's rights in it (routing's
-- candidates: the partial index holders).
CREATE TABLE hub_counters (
    location   text COLLATE "C"   NOT NULL,
    gtin       bigint NOT NULL,
    version    bigint NOT NULL,
    counter    bytea  NOT NULL,
    hub_rights bigint NOT NULL,
    PRIMARY KEY (location, gtin)
);
CREATE INDEX hub_counters_changes ON hub_counters (location, version);
CREATE INDEX hub_counters_holders ON hub_counters (gtin, location) WHERE hub_rights > 0;

-- Every event accepted, once, by id.
CREATE TABLE hub_events (
    id       uuid   PRIMARY KEY,
    location text COLLATE "C"   NOT NULL,
    body     bytea  NOT NULL
);

-- What a sync's content is checked against: per tag, one row per tag
-- and event, per (store, item) what its events explain.
CREATE TABLE hub_epc_state (
    epc         bytea   PRIMARY KEY,
    state       jsonb   NOT NULL,
    double_sold boolean NOT NULL
);
CREATE INDEX hub_epc_state_double_sold ON hub_epc_state (epc) WHERE double_sold;
CREATE TABLE hub_epc_rows (
    epc     bytea    NOT NULL,
    move    smallint NOT NULL,
    event   uuid     NOT NULL,
    replica text COLLATE "C"     NOT NULL,
    PRIMARY KEY (epc, move, event)
);
CREATE TABLE hub_explained (
    location text COLLATE "C"   NOT NULL,
    gtin     bigint NOT NULL,
    added    bigint NOT NULL,
    removed  bigint NOT NULL,
    PRIMARY KEY (location, gtin)
);

-- The catalog, with the version each item last changed at.
CREATE TABLE hub_catalog (
    gtin    bigint PRIMARY KEY,
    version bigint NOT NULL,
    item    bytea  NOT NULL
);
CREATE INDEX hub_catalog_changes ON hub_catalog (version);

-- Per store: its sync record, sales per minute, online demand, held
-- events' count.
CREATE TABLE hub_stores (
    store  text COLLATE "C"  PRIMARY KEY,
    record jsonb NOT NULL
);
CREATE TABLE hub_sales_per_minute (
    store  text COLLATE "C"   NOT NULL,
    minute bigint NOT NULL,
    units  bigint NOT NULL,
    PRIMARY KEY (store, minute)
);
CREATE INDEX hub_sales_per_minute_minute ON hub_sales_per_minute (minute);
CREATE TABLE hub_online_demand (
    location text COLLATE "C"   NOT NULL,
    gtin     bigint NOT NULL,
    estimate jsonb  NOT NULL,
    PRIMARY KEY (location, gtin)
);
CREATE TABLE hub_held_counts (
    store text COLLATE "C"   PRIMARY KEY,
    n     bigint NOT NULL
);
CREATE TABLE hub_held_events (
    id  uuid  PRIMARY KEY,
    doc jsonb NOT NULL
);

-- Ids that make writes idempotent: store-named orders, grants.
CREATE TABLE hub_orders (
    order_id text COLLATE "C"  PRIMARY KEY,
    doc      jsonb NOT NULL
);
CREATE TABLE hub_grants (
    request_id uuid  PRIMARY KEY,
    doc        jsonb NOT NULL
);

-- Exceptions HQ pages through, numbered in commit order.
CREATE TABLE hub_exceptions (
    id  bigint PRIMARY KEY,
    doc jsonb  NOT NULL
);

-- Routed orders, and each store's allocation changes in the order they
-- happened (its allocations page is one range).
CREATE TABLE hub_routed_orders (
    order_id text COLLATE "C"  PRIMARY KEY,
    status   text COLLATE "C"  NOT NULL,
    doc      jsonb NOT NULL
);
CREATE INDEX hub_routed_orders_status ON hub_routed_orders (status, order_id);
CREATE TABLE hub_allocation_changes (
    store   text COLLATE "C"   NOT NULL,
    key     text COLLATE "C"   NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (store, key)
);
CREATE UNIQUE INDEX hub_allocation_changes_version ON hub_allocation_changes (store, version);

-- Transfers, those due for the overdue sweep, and those received (by
-- when the hub learned of it).
CREATE TABLE hub_transfers (
    transfer_id     text COLLATE "C"  PRIMARY KEY,
    status          text COLLATE "C"  NOT NULL,
    doc             jsonb NOT NULL,
    due_since_ms    bigint,
    received_hub_ms bigint
);
CREATE INDEX hub_transfers_status ON hub_transfers (status, transfer_id);
CREATE INDEX hub_transfers_due ON hub_transfers (due_since_ms, transfer_id)
    WHERE due_since_ms IS NOT NULL;
CREATE INDEX hub_transfers_received ON hub_transfers (received_hub_ms, transfer_id)
    WHERE received_hub_ms IS NOT NULL;

-- Routed orders and transfers counted by status, kept as they move.
CREATE TABLE hub_status_counts (
    kind   text COLLATE "C"   NOT NULL,
    status text COLLATE "C"   NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (kind, status)
);

-- Returns counted against their originals chain-wide, claims of checked
-- returns, and returns across stores for HQ.
CREATE TABLE hub_returned (
    original uuid   NOT NULL,
    gtin     bigint NOT NULL,
    units    bigint NOT NULL,
    PRIMARY KEY (original, gtin)
);
CREATE TABLE hub_return_claims (
    original  uuid  NOT NULL,
    return_id uuid  NOT NULL,
    claim     jsonb NOT NULL,
    PRIMARY KEY (original, return_id)
);
CREATE TABLE hub_cross_returns (
    return_id uuid  PRIMARY KEY,
    doc       jsonb NOT NULL
);
