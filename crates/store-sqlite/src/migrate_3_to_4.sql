-- Schema 4: pending deliveries are indexed in two parts. Those leased to a process (the
-- hot path: created at ingest, attempted at once) by lease end, which a poll reads for
-- leases that ran out; those waiting for a poll (retries, overflow, released) by endpoint,
-- then due time, so that endpoints take turns at each poll and one endpoint's backlog
-- cannot hold back the others' deliveries.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_leased ON deliveries (next_attempt_at) WHERE status = 1 AND leased = 1;
CREATE INDEX deliveries_waiting ON deliveries (endpoint_id, next_attempt_at) WHERE status = 1 AND leased = 0;
