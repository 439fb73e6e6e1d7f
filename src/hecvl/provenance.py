"""Data versions by content: a rule reruns when the bytes it reads change, not when a file gets a new time.

Snakemake decides by modification times, and a `dvc pull` gives every data file a new one. So the DAG
marks data files `ancient()` (their times never count) and instead gives each rule that reads data the
*content hash* of the part it reads as a param: the lecture corpus, one target dataset, the pairs, the
synthetic world. A changed narration.csv, a new lecture or an edited label file changes that hash, and
Snakemake's params trigger reruns exactly the rules that read it; the same bytes pulled again change
nothing. Hashes are cheap to refresh: a file is read again only when its size or mtime changed
(`HashCache`, kept in `layout.HASH_CACHE`).

Data made inside the DAG (the synthetic world by `acquire`, the pairs by `pair`) also needs its rerun to
reach its readers in the same invocation, which Snakemake does not do across `ancient()` inputs. Each such
producer therefore writes a *stamp* (`layout.stamp`): an empty file its readers take as a plain input.
The stamp is not versioned by DVC, so a pull leaves it alone; where the data arrive without one (a fresh
clone after `dvc pull`), `adopt_stamps` creates it dated 1970, so it never makes a reader look stale; the
content hashes decide.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hecvl import layout
from hecvl.errors import HecvlError
from hecvl.io import atomic_write, sha256_file

MISSING = "missing"  # the version of data that is not there yet (e.g. the world before `acquire`)


class HashCache:
    """SHA-256 of files, recomputed only when a file's size or modification time changed.

    Entries are keyed by absolute path and hold (size, mtime_ns, sha256); a stale or corrupt cache file
    only costs rehashing, never a wrong hash, since every entry is checked against the file's stat.
    """

    def __init__(self, path: str | Path = layout.HASH_CACHE) -> None:
        self.path = Path(path)
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._entries = {k: v for k, v in loaded.items() if isinstance(v, list) and len(v) == 3}
        except (OSError, ValueError):
            pass

    def cached(self, path: Path) -> str | None:
        """The file's SHA-256 if the cache holds it for the file's current size and mtime, else None."""
        st = path.stat()
        entry = self._entries.get(str(path.resolve()))
        if entry is not None and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return str(entry[2])
        return None

    def file(self, path: Path) -> str:
        """The file's SHA-256 (cached while its size and mtime stay the same)."""
        found = self.cached(path)
        if found is not None:
            return found
        key = str(path.resolve())
        st = path.stat()
        digest = sha256_file(path)
        self._entries[key] = [st.st_size, st.st_mtime_ns, digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache back (atomically) when new hashes were computed."""
        if not self._dirty:
            return
        try:
            with atomic_write(self.path) as fh:
                json.dump(self._entries, fh, sort_keys=True)
        except OSError:  # a read-only project still works, it only rehashes next time
            return
        self._dirty = False


def tree_version(files: Iterable[Path], root: Path, cache: HashCache) -> str:
    """One hash over files: each one's path relative to `root` and its content hash, in sorted order."""
    paths = sorted(set(files))
    todo = [p for p in paths if cache.cached(p) is None]
    size = sum(p.stat().st_size for p in todo)
    # real datasets are hashed once (then only what changed): a bar where that takes a while
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"hashing {root}", disable=size < 1 << 28,
              leave=False) as bar:
        for path in todo:
            cache.file(path)
            bar.update(path.stat().st_size)
    h = hashlib.sha256()
    for path in paths:
        rel = os.path.relpath(path, root)
        h.update(f"{rel}\0{cache.file(path)}\n".encode())
    return h.hexdigest()[:16]


def folder_files(folder: Path) -> list[Path]:
    """Every file under `folder`, hidden files and folders left out (`.DS_Store`, editors' swap files)."""
    out = []
    for base, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(base, n) for n in names if not n.startswith(".")]
    return out


def corpus_files(corpus: Path) -> list[Path]:
    """The files of a lecture corpus that pairing and pretraining read: everything in its lecture folders."""
    from hecvl.corpora.corpus import lecture_dirs

    return [f for lecture in lecture_dirs(corpus) for f in folder_files(lecture)]


def dataset_files(name: str, params: Any) -> list[Path]:
    """The files of one target dataset that frames and evaluation read: split table, labels, videos."""
    from hecvl.datasets.registry import TargetDataset

    ds = TargetDataset.from_params(name, params)
    files = [f for f in ds.label_files().values()]
    files += [ds.video_path(v) for videos in ds.splits().values() for v in videos]
    if ds.splits_spec != "official":
        files.append(ds.root / ds.splits_spec)
    elif ds.fmt == "multibypass140" and ds.centre is not None:
        files += folder_files(ds.root / ds.split_pickles.format(centre=ds.centre))
    extra = [ds.tables, ds.root / "classes.yaml" if ds.fmt == "generic" else None]
    files += [p for p in extra if p is not None and p.is_file()]
    return [f for f in files if f.is_file()]


class DataVersions:
    """The content versions of a study's data parts, computed fresh on every call (cheap: stat-cached).

    Called by the DAG's params at planning time and again when a job starts, so a part that an earlier
    job of the same invocation regenerated is recorded with the hash of what the job really read.
    A part that cannot be listed yet (not generated, or broken: `acquire` reports how) has version
    `missing` or `error: ...`.
    """

    def __init__(self, params: Any, cache: HashCache | None = None) -> None:
        self.params = params
        self.cache = cache or HashCache()

    def _version(self, list_files: Any, root: Path) -> str:
        try:
            if not root.exists():
                return MISSING
            version = tree_version(list_files(), root, self.cache)
        except (HecvlError, OSError, ValueError) as exc:
            return f"error: {exc}"
        self.cache.save()
        return version

    def corpus(self, corpus: str | Path | None = None) -> str:
        root = Path(corpus or self.params.data.corpus)
        return self._version(lambda: corpus_files(root), root)

    def dataset(self, name: str) -> str:
        root = Path(self.params.data.targets[name].root)
        return self._version(lambda: dataset_files(name, self.params), root)

    def datasets(self, names: Iterable[str]) -> dict[str, str]:
        return {n: self.dataset(n) for n in names}

    def folder(self, folder: str | Path) -> str:
        """Every file under a folder (the pairs, or the whole synthetic world for its check)."""
        root = Path(folder)
        return self._version(lambda: folder_files(root), root)

    def files(self, paths: Iterable[str | Path]) -> str:
        """Named files (a rule's declared data inputs); absent ones count as such."""
        paths = [Path(p) for p in paths]
        if not all(p.is_file() for p in paths):
            return MISSING
        return self._version(lambda: paths, Path("."))


def adopt_stamps(stamps: dict[str, Iterable[str]]) -> list[str]:
    """Create each missing stamp whose producer's outputs are all there, dated 1970; returns those made.

    `stamps` maps a stamp to its producer's data outputs. Data without a stamp came from outside the DAG
    (a `dvc pull` into a fresh clone): the stamp then must not look newer than what was built from them.
    """
    made = []
    for stamp, outputs in stamps.items():
        path = Path(stamp)
        if path.exists() or not all(Path(o).exists() for o in outputs):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (0, 0))
        made.append(stamp)
    return made
