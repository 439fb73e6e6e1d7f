"""Phase class tables of the three target datasets, in id order, as the datasets publish them.

The ids are the ones of method.md §4: Cholec80 by its CamelCase names in the order the surgical
workflow community uses (0 Preparation ... 6 GallbladderRetraction), AutoLaparo by its label values
minus one, MultiBypass140 by the `label_id` of its JSON files (0-11; 12 and 13 are overlays).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hecvl.errors import HecvlError

CHOLEC80: list[str] = [
    "Preparation",
    "CalotTriangleDissection",
    "ClippingCutting",
    "GallbladderDissection",
    "GallbladderPackaging",
    "CleaningCoagulation",
    "GallbladderRetraction",
]

AUTOLAPARO: list[str] = [
    "Preparation",
    "Dividing Ligament and Peritoneum",
    "Dividing Uterine Vessels and Ligament",
    "Transecting the Vagina",
    "Specimen Removal",
    "Suturing",
    "Washing",
]

MULTIBYPASS140: list[str] = [
    "preparation",
    "gastric_pouch_creation",
    "omentum_division",
    "gastrojejunal_anastomosis",
    "anastomosis_test",
    "jejunal_separation",
    "closure_petersen_space",
    "jejunojejunal_anastomosis",
    "closure_mesenteric_defect",
    "cleaning_coagulation",
    "disassembling",
    "other_intervention",
]

# Annotated on top of the phases (a camera outside the patient, a bleeding-severity mark):
# they say something about the frame, never which phase it belongs to.
MULTIBYPASS140_OVERLAYS: dict[int, str] = {12: "out_of_body", 13: "severe_index"}

# Classes the published zero-shot protocol leaves out (PeskaVLP's tables: MultiBypass140 without "other").
# Their frames are not scored and they are never predicted; the ids of the other classes stay as published.
PROTOCOL_IGNORED: dict[str, tuple[str, ...]] = {"multibypass140": ("other_intervention",)}

CLASSES: dict[str, list[str]] = {
    "cholec80": CHOLEC80,
    "autolaparo": AUTOLAPARO,
    "multibypass140": MULTIBYPASS140,
}
# The published label formats `read_labels(fmt, ...)` reads (a target layout adds "generic": config/data.py).
LABEL_FORMATS: tuple[str, ...] = tuple(CLASSES)


def check_format(fmt: str) -> str:
    """Return `fmt` if it names a known label format, else a clear error listing the known ones."""
    if fmt not in CLASSES:
        raise HecvlError(f"unknown label format {fmt!r} (known: {', '.join(LABEL_FORMATS)})")
    return fmt


def read_phase_table(path: str | Path) -> dict[int, str]:
    """Read MultiBypass140 `tables/phase.csv` (header `id, name`, a space after the comma) to {id: name}."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise HecvlError(f"cannot read the phase table: {exc}", path) from None
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows or [c.strip() for c in rows[0]] != ["id", "name"]:
        raise HecvlError("expected the header 'id, name' in the phase table", path)
    table: dict[int, str] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0].strip().isdigit() or not row[1].strip():
            raise HecvlError(f"line {line_no}: expected 'id, name', got {','.join(row)!r}", path)
        pid, name = int(row[0]), row[1].strip()
        if pid in table:
            raise HecvlError(f"line {line_no}: phase id {pid} listed twice", path)
        table[pid] = name
    return table


def multibypass_classes(tables_dir: str | Path | None = None) -> list[str]:
    """The 12 MultiBypass140 class names, checked against `tables_dir/phase.csv` when it exists.

    The built-in names are the published ones; reading the table guards against a copy of the dataset
    whose ids were renumbered, which would silently shift every label.
    """
    if tables_dir is None:
        return list(MULTIBYPASS140)
    path = Path(tables_dir)
    if path.is_dir():  # a dataset's tables/ folder: the table is optional there
        path = path / "phase.csv"
        if not path.is_file():
            return list(MULTIBYPASS140)
    elif not path.is_file():
        raise HecvlError("phase table not found", path)
    table = read_phase_table(path)
    expected = {**dict(enumerate(MULTIBYPASS140)), **MULTIBYPASS140_OVERLAYS}
    for pid, name in sorted(table.items()):
        if expected.get(pid) != name:
            want = expected.get(pid, "no such id")
            raise HecvlError(f"phase id {pid} is {name!r} here but {want!r} in MultiBypass140", path)
    missing = [pid for pid in range(len(MULTIBYPASS140)) if pid not in table]
    if missing:
        raise HecvlError(f"phase ids {missing} missing from the phase table", path)
    return [table[pid] for pid in range(len(MULTIBYPASS140))]
