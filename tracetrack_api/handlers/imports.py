"""Bulk imports and label extraction rules."""

from __future__ import annotations

import threading

from tracetrack_db import errors, extraction, importfiles, imports

from ..errors import TooManyImports
from ..table import CsvStream, Ctx, Reply

# An import holds TRACETRACK_IMPORT_WORKERS pooled connections and a server
# thread for its seconds: one at a time per process leaves the rest of the pool
# to the scans (eight at once starved them into 503s, measured); more wait in
# line at the client (429 with Retry-After).
IMPORTS_AT_ONCE = 1
_import_slots = threading.BoundedSemaphore(IMPORTS_AT_ONCE)


def create_import(ctx: Ctx, file, layout: str, **options) -> Reply:
    """Run an import (or a dry run) of the body's file; 201 with the job."""
    if ctx.caller.role != "admin" and layout != "bills":
        raise errors.ImportNotAllowed("billers import the bills layout only", field="layout")
    settings = ctx.services.settings
    # the body first (to a spool, bounded): a slow upload holds no slot
    upload = importfiles.spool(file, settings.import_max_bytes)
    if not _import_slots.acquire(blocking=False):
        upload.close()
        raise TooManyImports("an import is running on this server process: retry shortly", retry_after=5)
    try:
        job = imports.run_import(
            ctx.db,
            upload,
            layout=layout,
            user_id=ctx.caller.id,
            max_bytes=settings.import_max_bytes,
            workers=settings.import_workers,
            **options,
        )
    finally:
        _import_slots.release()
    return Reply(job, 201, {"Location": f"/api/imports/{job.id}"})


def _visible(ctx: Ctx, import_id: int) -> imports.ImportJob:
    """An import the caller may see: any for an admin, their own for a biller."""
    job = imports.get_import(ctx.db, import_id)
    if ctx.caller.role != "admin" and job.created_by != ctx.caller.id:
        raise errors.ImportNotFound(f"import {import_id} not found")
    return job


def list_imports(ctx: Ctx, limit: int, cursor: str | None = None):
    mine = None if ctx.caller.role == "admin" else ctx.caller.id
    return imports.list_imports(ctx.db, created_by=mine, limit=limit, cursor=cursor)


def get_import(ctx: Ctx, import_id: int) -> imports.ImportDetail:
    return imports.import_detail(ctx.db, _visible(ctx, import_id))


def import_results(ctx: Ctx, import_id: int) -> CsvStream:
    return CsvStream(imports.results_csv(ctx.db, _visible(ctx, import_id)), f"import-{import_id}-results.csv")


def list_rules(ctx: Ctx) -> list[extraction.ExtractionRule]:
    return extraction.list_rules(ctx.db)


def add_rule(ctx: Ctx, name: str, pattern: str, description: str = "") -> extraction.ExtractionRule:
    return extraction.add_rule(
        ctx.db, name, pattern, description, user_id=ctx.caller.id, origin=ctx.origin, conn=ctx.conn
    )


def change_rule(
    ctx: Ctx, rule_name: str, pattern: str | None = None, description: str | None = None
) -> extraction.ExtractionRule:
    return extraction.change_rule(
        ctx.db, rule_name, pattern=pattern, description=description, origin=ctx.origin, conn=ctx.conn
    )
