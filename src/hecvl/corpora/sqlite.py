"""Checked reads from an SQLite file: the corpus databases are large, third-party and dynamically typed,
so every missing table, missing column or wrongly typed value becomes one line naming the file, the
table, the column and the row."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hecvl.errors import HecvlError

SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite(path: Path) -> bool:
    """Whether the file starts with the SQLite header (cheap, before opening it)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def open_readonly(path: Path, what: str) -> sqlite3.Connection:
    """The database opened read-only (an import never changes its source)."""
    if not path.is_file():
        raise HecvlError(f"{what} not found", path)
    if not is_sqlite(path):
        raise HecvlError(f"not an SQLite database (expected the {what})", path)
    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise HecvlError(f"cannot read the {what}: {exc}", path) from None
    return con


def tables(con: sqlite3.Connection) -> list[str]:
    """Table and view names, sorted."""
    rows = con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")
    return [r[0] for r in rows]


def columns(con: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    """(name, declared type) of a table's columns, in table order."""
    return [(r[1], r[2]) for r in con.execute(f'PRAGMA table_info("{table}")')]


def require_columns(con: sqlite3.Connection, path: Path, table: str, required: Sequence[str]) -> list[str]:
    """The table's column names; a missing table or column is a HecvlError naming both."""
    if table not in tables(con):
        raise HecvlError(f"missing table {table} (tables found: {', '.join(tables(con)) or 'none'})", path)
    names = [name for name, _ in columns(con, table)]
    missing = [c for c in required if c not in names]
    if missing:
        raise HecvlError(
            f"table {table}: missing column(s) {', '.join(missing)} (columns found: {', '.join(names)})", path
        )
    return names


def select(con: sqlite3.Connection, path: Path, table: str, cols: Sequence[str], order: str) -> list[dict]:
    """All rows of `cols` as dicts, ordered by `order` (so every run reads in the same order)."""
    listed = ", ".join(f'"{c}"' for c in cols)
    try:
        cursor = con.execute(f'SELECT {listed} FROM "{table}" ORDER BY "{order}"')
        return [dict(zip(cols, row, strict=True)) for row in cursor]
    except sqlite3.DatabaseError as exc:
        raise HecvlError(f"table {table}: cannot read: {exc}", path) from None


class RowError:
    """Builds the one-line error of a value of one row: 'table T, KEY V: column C ...'."""

    def __init__(self, path: Path, table: str, key: str) -> None:
        self.path, self.table, self.key = path, table, key

    def __call__(self, row: dict, message: str) -> HecvlError:
        return HecvlError(f"table {self.table}, {self.key} {row.get(self.key)!r}: {message}", self.path)

    def integer(self, row: dict, col: str) -> int:
        value = row.get(col)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self(row, f"{col} is not an integer ({value!r})")

    def number(self, row: dict, col: str, nullable: bool = False) -> float | None:
        """A finite float; numeric text is accepted (SQLite keeps it as text in untyped columns)."""
        value = row.get(col)
        if value is None and nullable:
            return None
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise self(row, f"{col} is not a number ({value!r})")
        return number

    def flag(self, row: dict, col: str) -> bool:
        """A boolean column: 1/0, true/false; NULL is false (as SQL's `col = 1` treats it)."""
        value = row.get(col)
        if value is None:
            return False
        if isinstance(value, bool | int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
            return value.strip().lower() in ("1", "true")
        raise self(row, f"{col} is not a boolean 0/1 ({value!r})")

    def text(self, row: dict, col: str) -> str:
        """The text of a column, "" for NULL. A BLOB (SQLite stores whatever bytes were inserted) is
        decoded as UTF-8, never written as "b'...'"; other non-text values are written as their string."""
        value: Any = row.get(col)
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = f"byte {exc.start}: {value[exc.start : exc.start + 1]!r}"
                raise self(row, f"{col} is a BLOB that is not valid UTF-8 ({bad})") from None
        return "" if value is None else str(value)
