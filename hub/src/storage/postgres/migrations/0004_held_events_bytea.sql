-- A held event is one a sync refused, so any text a store sent may be in
-- it, a NUL character too, which jsonb cannot hold (and the write of the
-- whole batch would fail). Its document is kept as JSON text in bytea:
-- every byte sequence fits, and nothing queries inside it.
ALTER TABLE hub_held_events
    ALTER COLUMN doc TYPE bytea USING convert_to(doc::text, 'UTF8');
