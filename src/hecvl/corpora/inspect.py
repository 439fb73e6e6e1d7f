"""`hecvl corpus inspect PATH`: what an annotation file holds, so a field map can be written from it.

For JSON / JSON Lines / Parquet: every key path with its nesting (`a.b`, `list[]`), the types seen and
how often, and a first example value. For an SQLite database (SurgLaVi): its tables, their columns with
declared types, and row counts.
"""

from __future__ import annotations

from pathlib import Path

from hecvl.corpora.records import describe_document, describe_lines, load_document, source_files
from hecvl.corpora.sqlite import columns, is_sqlite, open_readonly, tables


def inspect_sqlite(path: Path) -> list[str]:
    """Tables, columns (name and declared type) and row counts of a database."""
    con = open_readonly(path, "database")
    try:
        lines = [f"{path.name}: SQLite database, {len(tables(con))} table(s)"]
        for table in tables(con):
            count = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            lines.append(f"  {table}: {count} row(s)")
            lines += [f"    {name}  {decl or '(no type)'}" for name, decl in columns(con, table)]
    finally:
        con.close()
    return lines


def inspect_path(path: str | Path) -> list[str]:
    """The description of a file, or of every annotation file under a folder, as printable lines."""
    path = Path(path)
    if path.is_file() and is_sqlite(path):
        return inspect_sqlite(path)
    lines: list[str] = []
    files = source_files(path)
    for file in files:
        document = load_document(file)
        shape = f"a list of {len(document)}" if isinstance(document, list) else f"a {type(document).__name__}"
        name = file.relative_to(path).as_posix() if file != path else file.name
        lines.append(f"{name}: {shape}")
        lines += describe_lines(describe_document(document))
    return lines
