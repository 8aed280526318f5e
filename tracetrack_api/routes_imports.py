"""Route table rows: bulk import jobs and label extraction rules (issue 11).

Joined into routes.OPERATIONS; the same rules as the rows there.
"""

from __future__ import annotations

from tracetrack_db import Page, extraction, importfiles, imports

from .handlers import imports as handlers
from .schema import AREA, PAGE, Bool, Enum, Field, Param, Text, body, query
from .table import BILLERS, CSV, Operation

RULE_NAME = Text(
    max_length=50,
    pattern=r"^[a-z][a-z0-9_]{1,49}$",
    description="2-50 characters of a-z 0-9 _, starting with a letter",
    invalid="a rule name is 2-50 characters of a-z 0-9 _, starting with a letter",
)
PATTERN = Text(
    max_length=extraction.MAX_PATTERN,
    min_length=1,
    description="a Python regular expression with a named group qr, e.g. LABEL NO\\.(?P<qr>\\d+)",
)
FILE_ERRORS = (
    "empty_file",
    "missing_column",
    "unsupported_file",
    "formula_cell",
    "cell_too_large",
    "bad_encoding",
    "too_many_rows",
    "file_too_large",
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "create_import",
        "POST",
        "/api/imports",
        handlers.create_import,
        "Import (or check) a CSV or XLSX file of scans, bills or bags",
        "imports",
        BILLERS,
        imports.ImportJob,
        status=201,
        upload=(
            "text/csv",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/octet-stream",
        ),
        query=query(
            layout=Param(Enum(tuple(imports.LAYOUTS)), required=True, description="links, blocks, bills or bags"),
            rule=Param(RULE_NAME, description="an extraction rule applied to every QR cell"),
            dry_run=Param(Bool(), False, description="check every row against the current data, change nothing"),
            all_or_nothing=Param(Bool(), False, description="apply nothing unless every row can be applied"),
            dispatch_area=Param(AREA, description="the area of new parents; bags of another area are refused"),
            encoding=Param(Enum(importfiles.ENCODINGS), "utf-8", description="of a CSV file (UTF-8 may have a BOM)"),
            file_name=Param(Text(255), description="recorded with the job"),
        ),
        errors=(*FILE_ERRORS, "rule_not_found", "unknown_area", "import_not_allowed", "too_many_imports"),
        description="The file is the body (at most TRACETRACK_IMPORT_MAX_BYTES; 413 beyond), CSV or XLSX "
        "(its first sheet), with a header row naming the layout's columns. Each block (a parent's "
        "children, a bill's parents, a bag) applies atomically with the checks and events of a scan; "
        "every row gets a verdict (ok, already_done, error, skipped). Billers import the bills layout "
        "only. A file refused whole (4xx) records nothing. Importing the same file again changes "
        "nothing: every row is already_done. One import at a time per server process (429 "
        "too_many_imports with Retry-After).",
    ),
    Operation(
        "list_imports",
        "GET",
        "/api/imports",
        handlers.list_imports,
        "Import jobs, newest first (a biller sees their own)",
        "imports",
        BILLERS,
        Page[imports.ImportJob],
        query=query(**PAGE),
    ),
    Operation(
        "get_import",
        "GET",
        "/api/imports/{import_id}",
        handlers.get_import,
        "An import job with its first 20 rows not applied",
        "imports",
        BILLERS,
        imports.ImportDetail,
        errors=("import_not_found",),
    ),
    Operation(
        "get_import_results",
        "GET",
        "/api/imports/{import_id}/results.csv",
        handlers.import_results,
        "Every row's result as CSV: row_no, input, qr, block, verdict, code, message",
        "imports",
        BILLERS,
        CSV,
        errors=("import_not_found",),
    ),
    Operation(
        "list_extraction_rules",
        "GET",
        "/api/extraction-rules",
        handlers.list_rules,
        "Label extraction rules, by name",
        "imports",
        BILLERS,
        list[extraction.ExtractionRule],
    ),
    Operation(
        "add_extraction_rule",
        "POST",
        "/api/extraction-rules",
        handlers.add_rule,
        "Add a label extraction rule",
        "imports",
        ("admin",),
        extraction.ExtractionRule,
        status=201,
        idempotent=True,
        body=body(
            name=Field(RULE_NAME, required=True), pattern=Field(PATTERN, required=True), description=Field(Text(500))
        ),
        errors=("invalid_rule", "rule_exists"),
    ),
    Operation(
        "change_extraction_rule",
        "PATCH",
        "/api/extraction-rules/{rule_name}",
        handlers.change_rule,
        "Change a label extraction rule's pattern or description",
        "imports",
        ("admin",),
        extraction.ExtractionRule,
        idempotent=True,
        body=body(min_fields=1, pattern=Field(PATTERN), description=Field(Text(500))),
        errors=("invalid_rule", "rule_not_found"),
    ),
)
