-- /api/bills/{bill_no}/manifest, /manifest.csv and /manifest.pdf: like
-- parents, complete and reopen (0005), these words may not be a segment of a
-- bill number, so every path has one reading. NOT VALID as in 0005: rows
-- written before stay; every new one is checked.
ALTER TABLE bill DROP CONSTRAINT bill_bill_no_check;
ALTER TABLE bill ADD CONSTRAINT bill_bill_no_check
    CHECK (length(bill_no) <= 64
           AND bill_no ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$'
           AND bill_no !~* '(^|/)(parents|complete|reopen|manifest|manifest\.csv|manifest\.pdf)(/|$)') NOT VALID;
