-- Safe to deploy (issue 9).

-- CSV cells a spreadsheet would run as a formula (=, +, -, @, and tab or CR
-- that some of them skip first) get a leading apostrophe in every export: the
-- cell shows as the text it is. Inlined by the planner (a plain SQL function).
CREATE FUNCTION tt_csv_text(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v ~ '^[-=+@\t\r]' THEN '''' || v ELSE v END
$$;
