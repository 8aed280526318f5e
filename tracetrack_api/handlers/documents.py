"""Dispatch documents: a bill's manifest as JSON, CSV and PDF (tracetrack_db.manifests)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from tracetrack_db import manifests
from tracetrack_db.manifest_pdf import manifest_pdf

from ..table import Ctx, Static


def _site_tz(ctx: Ctx) -> ZoneInfo:
    """The site's time zone (TRACETRACK_TIMEZONE): every time in a manifest is shown in it."""
    return ctx.services.settings.db.zone


def manifest(ctx: Ctx, bill_no: str) -> manifests.Manifest:
    return manifests.manifest(ctx.db, bill_no, tz=_site_tz(ctx))


def manifest_csv(ctx: Ctx, bill_no: str) -> Static:
    tz = _site_tz(ctx)
    m = manifests.manifest(ctx.db, bill_no, tz=tz)
    disposition = f'attachment; filename="{manifests.download_name(m, "csv")}"'
    return Static(manifests.manifest_csv(m, tz=tz), "text/csv; charset=utf-8", {"Content-Disposition": disposition})


def manifest_pdf_document(ctx: Ctx, bill_no: str) -> Static:
    tz = _site_tz(ctx)
    m = manifests.manifest(ctx.db, bill_no, tz=tz)
    disposition = f'inline; filename="{manifests.download_name(m, "pdf")}"'
    return Static(manifest_pdf(m, tz=tz), "application/pdf", {"Content-Disposition": disposition})
