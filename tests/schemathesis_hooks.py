"""schemathesis hooks for tests/test_schemathesis.py (loaded with SCHEMATHESIS_HOOKS).

`positive_data_acceptance` would call every 400 to a schema-valid request a
mismatch between the document and the server. A few of our 400s depend on
the data or on who asks, which no schema can state: whether a well-formed
area name exists (unknown_area), whether the caller's role or the user's
current role needs an area (dispatch_area_required), and a batch longer than
this parent's capacity (too_many_children; the schema states the hard cap),
a report's range, a regular expression's validity, an import file's content.
This check is that one with those codes allowed, and only those: any other
400 or 413 to a schema-valid request fails. (422 is the contract's "wrong
kind of bag", which parent formats, being data, decide.)
"""

from __future__ import annotations

import schemathesis

# weak_password: a password of a valid length may still be a common one or too
# easy to guess (zxcvbn), which no pattern states
DATA_DEPENDENT = frozenset(
    {"unknown_area", "dispatch_area_required", "too_many_children", "weak_password"}
    # invalid_range: a report's from/to: their order and span (at most 92 days)
    | {"invalid_range"}
    # invalid_rule: whether a text is a regular expression with a group qr, safe to run
    | {"invalid_rule"}
    # an import's file: what its bytes hold (a header, the layout's columns, CSV or XLSX ...)
    | {"empty_file", "missing_column", "unsupported_file", "formula_cell", "cell_too_large", "bad_encoding"}
    | {"too_many_rows", "file_too_large"}
    # wrong_password: whether current_password is the caller's (POST /api/me/password)
    | {"wrong_password"}
    # duplicate_client_op_id: two operations of one sync list with the same id (no schema states it)
    | {"duplicate_client_op_id"}
)


@schemathesis.check
def valid_requests_are_accepted_unless_the_data_decides(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 413):
        return None
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    # a parent format's pattern: whether PostgreSQL can run it (the schema states only ^...$)
    if code == "validation_error" and case.path.startswith("/api/parent-formats"):
        field = response.json()["error"].get("field")
        if field == "pattern":
            return None
    if code not in DATA_DEPENDENT:
        raise AssertionError(
            f"a schema-valid request was refused with {response.status_code} {code}: {response.text[:300]}"
        )
    return None
