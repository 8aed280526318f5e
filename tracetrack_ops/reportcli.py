"""`tracetrack report eod`: the end-of-day summary a manager reads after a
shift, from the library directly (no HTTP): bills completed on the local day,
what they dispatched, per biller and per area, and each dispatcher's scans."""

from __future__ import annotations

import csv
import io
import re
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from tracetrack_db import Database, reports
from tracetrack_db.exports import spreadsheet_text
from tracetrack_db.jsontext import dumps
from tracetrack_db.runtime import database_url
from tracetrack_db.settings import Settings, time_zone

from .dbcli import fail

FORMATS = ("text", "json", "csv", "pdf")
FIGURES = ("bills", "parents", "children", "expected_weight_kg", "actual_weight_kg", "difference_kg")
SCANS = ("parent_scans", "links", "unlinks")


@click.group("report")
def report_group() -> None:
    """Reports in the site's time zone (TRACETRACK_TIMEZONE)."""


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("a date, YYYY-MM-DD") from None


def _zone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return time_zone(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@report_group.command("eod")
@click.option("--date", "day", callback=_day, help="The local day, YYYY-MM-DD (default: today in the site's zone).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (needed for pdf).")
@click.option("--timezone", "zone", callback=_zone, help="An IANA zone (default: TRACETRACK_TIMEZONE, else UTC).")
def eod_command(day: date | None, fmt: str, output: Path | None, zone: str | None) -> None:
    """The day's summary: bills completed, parents and children dispatched,
    weights and their differences, per biller and per area, scans per dispatcher."""
    if fmt == "pdf" and output is None:
        fail("--format pdf needs --output FILE")
    settings = Settings.from_env()
    with database_url(settings) as url, Database(url, min_size=1, max_size=1, timeout=30) as db:
        # a report reads; it never migrates (serve and db migrate do): say what is missing
        if not reports.ready(db):
            fail("this database has no report rollup yet: run `tracetrack db migrate` first")
        summary = reports.end_of_day(db, day, zone=zone or settings.timezone)
    if fmt == "json":
        data = dumps(summary) + b"\n"
    elif fmt == "csv":
        data = eod_csv(summary).encode()
    elif fmt == "pdf":
        data = eod_pdf(summary)
    else:
        if output is None:
            print_text(summary, terminal=sys.stdout.isatty())
            return
        data = text_of(summary).encode()
    if output is not None:
        output.write_bytes(data)
        click.echo(f"wrote {output} ({len(data):,} bytes)", err=True)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


# the same rows for every format ---------------------------------------------------
def _kg(value: Decimal, human: bool = True) -> str:
    """With thousands separators for people (text, PDF), plain for machines (CSV)."""
    return f"{value:,.3f}" if human else f"{value:.3f}"


def sections(summary: reports.EndOfDay, human: bool = True) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each table of the summary."""

    def kg(value: Decimal) -> str:
        return _kg(value, human)

    def _figures(totals: reports.BillFigures) -> list[str]:
        return [
            str(totals.bills),
            str(totals.parents),
            str(totals.children),
            kg(totals.expected_weight_kg),
            kg(totals.actual_weight_kg),
            kg(totals.difference_kg),
        ]

    return [
        ("Dispatched (bills completed)", list(FIGURES), [_figures(summary.dispatched)]),
        (
            "Per biller (who completed the bills)",
            ["biller", *FIGURES],
            [[b.username or "-", *_figures(b.totals)] for b in summary.by_biller],
        ),
        ("Per area", ["dispatch_area", *FIGURES], [[a.dispatch_area, *_figures(a.totals)] for a in summary.by_area]),
        (
            "Bills completed",
            ["bill_no", "completed_at", "completed_by", "parents", "children", "expected_kg", "actual_kg", "diff_kg"],
            [
                [
                    b.bill_no,
                    b.completed_at.strftime("%H:%M") if b.completed_at else "",
                    b.completed_by_username or "-",
                    str(b.parents),
                    str(b.children),
                    kg(b.expected_weight_kg),
                    kg(b.actual_weight_kg),
                    kg(b.difference_kg),
                ]
                for b in summary.bills
            ],
        ),
        (
            "Scans per dispatcher",
            ["user", "dispatch_area", *SCANS],
            [
                [
                    s.username or str(s.user_id),
                    s.dispatch_area or "-",
                    str(s.parent_scans),
                    str(s.links),
                    str(s.unlinks),
                ]
                for s in summary.scans
            ],
        ),
    ]


def _title(summary: reports.EndOfDay) -> str:
    return f"End of day {summary.day} ({summary.time_zone})"


def print_text(summary: reports.EndOfDay, *, terminal: bool, file: Any = None) -> None:
    """rich tables on a terminal; plain aligned text (no colour, no box lines) otherwise."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if terminal:
        console = Console(file=file)
    else:
        console = Console(file=file, no_color=True, highlight=False, width=160, force_terminal=False)
    console.print(_title(summary), style="bold" if terminal else None)
    for title, header, rows in sections(summary):
        table = Table(*header, title=title, box=box.SIMPLE_HEAD if terminal else None, title_justify="left")
        for row in rows or [["(none)"] + [""] * (len(header) - 1)]:
            table.add_row(*row)
        console.print(table)


def text_of(summary: reports.EndOfDay) -> str:
    out = io.StringIO()
    print_text(summary, terminal=False, file=out)
    return out.getvalue()


_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _csv_cell(cell: object) -> object:
    """Usernames may start with - or @, which a spreadsheet would compute; figures
    (a negative difference too) stay numbers."""
    if isinstance(cell, str) and not _NUMBER.fullmatch(cell):
        return spreadsheet_text(cell)
    return cell


def eod_csv(summary: reports.EndOfDay) -> str:
    """One table: a `section` column, then the section's columns (each section its header row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["day", summary.day, "time_zone", summary.time_zone])
    for title, header, rows in sections(summary, human=False):
        writer.writerow(["section", *header])
        for row in rows:
            writer.writerow([title, *(_csv_cell(c) for c in row)])
    return out.getvalue()


def eod_pdf(summary: reports.EndOfDay) -> bytes:
    """An A4 page (or more) with the same tables, made with fpdf2."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _title(summary), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(0, 5, f"generated {summary.generated_at:%Y-%m-%d %H:%M %z}", new_x="LMARGIN", new_y="NEXT")
    for title, header, rows in sections(summary):
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8)
        # bill numbers and usernames get the room; the figures are short
        widths = tuple(3 if i == 0 or h.endswith(("by", "biller", "user")) else 2 for i, h in enumerate(header))
        with pdf.table(text_align="LEFT", first_row_as_headings=True, line_height=5, col_widths=widths) as table:
            table.row([h.replace("_", " ") for h in header])
            for row in rows or [["(none)"] + [""] * (len(header) - 1)]:
                table.row([_latin1(cell) for cell in row])
    return bytes(pdf.output())


def _latin1(text: str) -> str:
    """The core PDF fonts know Latin-1 only; anything else shows as '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")
