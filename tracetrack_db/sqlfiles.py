"""Where the SQL files live: inside the wheel, or at the top of a checkout."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path


def sql_root() -> Traversable:
    packaged = resources.files("tracetrack_db") / "sql"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "sql"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("the tracetrack SQL files are missing from this installation")


def sql_files(folder: str) -> list[tuple[str, str]]:
    """(name, text) of every .sql file in `folder`, sorted by name."""
    directory = sql_root() / folder
    if not directory.is_dir():
        return []
    files = [f for f in directory.iterdir() if f.name.endswith(".sql")]
    return [(f.name, f.read_text(encoding="utf-8")) for f in sorted(files, key=lambda f: f.name)]
