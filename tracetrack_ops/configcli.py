"""`tracetrack config`: every setting, its effective value and where it came from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import orjson

from tracetrack_db.settings import DATA_DIR, ConfigError, Var, default_data_dir


def _all_vars() -> tuple[Var, ...]:
    from tracetrack_api.config import ALL_VARS  # the service's are declared beside the library's

    return ALL_VARS


def describe(var: Var, data_dir: Path) -> dict[str, Any]:
    """One row: name, shown value, source ('environment', 'default', or what stands in)."""
    source = var.source()
    try:
        value = var.get()
    except ConfigError as exc:
        return {
            "name": var.name,
            "value": var.shown(os.environ[var.name]),
            "source": "environment",
            "error": str(exc),
        }
    if value is None:
        stands_in = {
            "DATABASE_URL": f"embedded PostgreSQL in {data_dir / 'pgdata'}",
            "TRACETRACK_OWNER_URL": "DATABASE_URL",
            "DATABASE_READ_URL": "DATABASE_URL",
            "TRACETRACK_LISTEN_URL": "DATABASE_URL",
            "REDIS_URL": "in-process cache, counters in PostgreSQL",
            "TRACETRACK_DATA_DIR": str(default_data_dir()),
        }
        if var.name == "TRACETRACK_SECRET_KEY":
            key_file = data_dir / "secret_key"
            shown = f"**** (from {key_file})" if key_file.exists() else f"generated into {key_file} by serve"
            return {"name": var.name, "value": shown, "source": "data directory"}
        return {"name": var.name, "value": stands_in.get(var.name, "unset"), "source": source}
    shown = ",".join(value) if isinstance(value, tuple) else str(value)
    row = {"name": var.name, "value": var.shown(shown), "source": source}
    if var.name in SIZED_BY_SERVE:
        row["note"] = "tracetrack serve sizes each worker's pool itself; this is for gunicorn and library users"
    return row


# `serve` sets these for its workers from the CPU count and max_connections (tracetrack_ops.sizing)
SIZED_BY_SERVE = ("TRACETRACK_POOL_MIN_SIZE", "TRACETRACK_POOL_MAX_SIZE")


@click.command("config")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def config_command(fmt: str) -> None:
    """Print every setting with its effective value and where it came from
    (environment or default); secrets are masked. Exits 2 if any value is bad."""
    try:
        data_dir = DATA_DIR.get() or default_data_dir()
    except ConfigError:
        data_dir = default_data_dir()
    rows = [describe(var, data_dir) for var in _all_vars()]
    if fmt == "json":
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            line = f"{r['name']:<{width}}  {r['value']}  [{r['source']}]"
            line += f"  ({r['note']})" if "note" in r else ""
            click.echo(line + (f"  ERROR: {r['error']}" if "error" in r else ""))
    if any("error" in r for r in rows):
        raise SystemExit(2)
    from tracetrack_api.config import ApiSettings

    try:  # what no single variable shows: settings that contradict each other
        ApiSettings.from_env()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
