-- Schema 5: owned, fenced leases (a delivery's lease names its node and a generation)
-- and compare-and-set endpoint updates (a revision per endpoint). The settings table is
-- created by schema.sql.
ALTER TABLE deliveries ADD COLUMN lease_owner INTEGER;
ALTER TABLE deliveries ADD COLUMN lease_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
