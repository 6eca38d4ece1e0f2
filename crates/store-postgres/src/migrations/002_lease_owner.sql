-- Schema 2: a delivery has a lease owner exactly while it is leased, so the fenced writes
-- (record, renew, release) match on the owner and generation alone. Had they also said
-- `leased = 1`, PostgreSQL could answer them from the partial index of leased deliveries
-- and, while its statistics still call that set small (a new database under sudden load),
-- read every leased delivery for each batch instead of looking each one up by its key.
UPDATE deliveries SET lease_owner = NULL WHERE leased = 0 AND lease_owner IS NOT NULL;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_leased_has_owner
    CHECK ((leased = 1) = (lease_owner IS NOT NULL));
