"""`hecvl store`: build and check the training frame store (`hecvl.video.store`).

    hecvl store build --params FILE --lecture LECTURE [--corpus DIR] [--out PACK]   (one job of the DAG)
    hecvl store build --params FILE --all [--corpus DIR]                            (the whole corpus)
    hecvl store verify PACK|FOLDER...                                               (exit 1 if any is bad)

Settings come from `train.store`, `frames.transform.size` and `pairing.loader.backend` of the (resolved)
params file; the corpus is `data.corpus` unless `--corpus` says otherwise. A pack is written to
`<train.store.root or data/store>/<key>/<lecture>.pack` unless `--out` names another; a pack that is
already built from the same video bytes with the same settings, and intact, is left as it is.

Size guard (`train.store.max_gib`): before anything is decoded, a raw store's size is computed exactly
from the probed videos of the whole corpus (frames x H x W x 3); a jpeg store is counted as it is built
(the packs already in the store folder plus this lecture's bytes so far). A refused build leaves no pack.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from hecvl import layout
from hecvl.config import load_params
from hecvl.errors import HecvlError
from hecvl.video.store import SizeGuard, StoreSettings, ensure_pack, gib, raw_store_bytes, verify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="decode lecture videos into their frame store packs")
    build.add_argument("--params", type=Path, required=True, help="params file (a resolved configuration)")
    build.add_argument("--variant", help="variant of the params file to resolve (default: the main one)")
    which = build.add_mutually_exclusive_group(required=True)
    which.add_argument("--lecture", help="the lecture folder's name (one pack: one job of the DAG)")
    which.add_argument("--all", action="store_true", help="every lecture of the corpus")
    build.add_argument("--corpus", type=Path, help="lecture corpus folder (default: data.corpus)")
    build.add_argument("--out", type=Path, help="pack to write (--lecture only; default: the store's)")
    check = sub.add_parser("verify", help="check packs against their sidecars (SHA-256); exit 1 if bad")
    check.add_argument("packs", nargs="+", type=Path, help="pack files, or folders whose *.pack to check")


def run(args: argparse.Namespace) -> int:
    if args.store_command == "verify":
        return _verify(args.packs)
    return _build(args)


def _build(args: argparse.Namespace) -> int:
    from hecvl.corpora.corpus import find_video, lecture_dirs

    params = load_params(args.params).variant(args.variant)
    settings = StoreSettings.from_params(params)
    store = params.train.store
    corpus = Path(args.corpus if args.corpus is not None else params.data.corpus)
    if args.out is not None and args.all:
        raise HecvlError("--out names one pack: use it with --lecture")
    if args.all:
        lectures = lecture_dirs(corpus)
    else:
        lecture = corpus / args.lecture
        if not lecture.is_dir():
            raise HecvlError(f"no lecture {args.lecture!r} in the corpus", lecture)
        lectures = [lecture]
    packs = {d.name: args.out or Path(layout.store_pack(settings.key(), d.name, store.root or layout.STORE))
             for d in lectures}
    folder = next(iter(packs.values())).parent if packs else Path(store.root or layout.STORE)

    if settings.encoding == "raw":  # exact, from the probes: refuse before decoding anything
        videos = [v for d in lecture_dirs(corpus) if (v := find_video(d)[0]) is not None]
        total = raw_store_bytes(videos, settings)
        SizeGuard(store.max_gib).check(total, f"{len(videos)} lectures at {settings.key()}", "raw", folder)
    built = {p.name: p.stat().st_size for p in folder.glob("*.pack") if p.is_file()}  # empty if no folder

    made = kept = frames = 0
    bar = tqdm(lectures, desc="store", unit="lecture", disable=None if args.all else True)
    for lecture in bar:
        pack = packs[lecture.name]
        others = sum(size for name, size in built.items() if name != pack.name)
        meta, fresh = ensure_pack(_video(lecture, find_video), pack, settings, progress=True,
                                  guard=SizeGuard(store.max_gib, others))
        built[pack.name] = meta["pack_bytes"]
        made, kept, frames = made + fresh, kept + (not fresh), frames + meta["frames"]
        if not args.all:
            state = "built" if fresh else "up to date"
            print(f"{pack}: {state}, {meta['frames']} frames at {meta['grid_fps']:g} fps, "
                  f"{meta['pack_bytes'] / 2**20:.1f} MiB")
    if args.all:
        size = sum(built.get(packs[d.name].name, 0) for d in lectures)
        print(f"{len(lectures)} lecture(s): {made} built, {kept} up to date; {frames} frames, "
              f"{gib(size)} in {folder}")
    return 0


def _video(lecture: Path, find_video) -> Path:
    video, issues = find_video(lecture)
    if video is None:
        raise HecvlError(issues[0][1] if issues else "no video file", lecture)
    return video


def _verify(paths: list[Path]) -> int:
    packs: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.pack"))
            if not found:
                raise HecvlError("no *.pack files in the folder", path)
            packs.extend(found)
        else:
            packs.append(path)
    bad = 0
    for pack in tqdm(packs, desc="verify", unit="pack", disable=None if len(packs) > 1 else True):
        try:
            verify(pack)
        except HecvlError as exc:
            bad += 1
            print(exc)
    print(f"{len(packs) - bad} of {len(packs)} pack(s) intact")
    return 1 if bad else 0
