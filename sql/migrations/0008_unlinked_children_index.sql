-- tracetrack: no-transaction
-- The list of children scanned but in no parent yet (GET /api/bags?linked=false,
-- newest first): without it, a walk back through every linked child. Partial:
-- only unlinked children are in it, so linking a child adds nothing to it.
--
-- Built CONCURRENTLY, so scans go on while it builds over millions of bags;
-- that cannot run in a transaction (hence the header line above). A build
-- that failed part-way leaves an INVALID index: the DROP makes a re-run start
-- over.
DROP INDEX CONCURRENTLY IF EXISTS bag_unlinked_child_idx;
CREATE INDEX CONCURRENTLY bag_unlinked_child_idx ON bag (id) WHERE type = 'child' AND parent_id IS NULL;
