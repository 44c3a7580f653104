-- How many exceptions HQ acknowledged (`POST /v1/exceptions/{id}/ack`),
-- kept as they are so the dashboard's open count is not a scan. The
-- acknowledgement itself is in the exception's document.
INSERT INTO hub_sequences (name, value)
SELECT 'exceptions_acked', count(*) FROM hub_exceptions WHERE doc ? 'acknowledged'
ON CONFLICT (name) DO NOTHING;
