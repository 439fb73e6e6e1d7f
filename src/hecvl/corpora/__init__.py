"""Importers from public multi-level surgical video-text corpora into the lecture-corpus layout.

Neither SurgLaVi-beta nor SurgAtlas ships videos: an import writes each lecture's text files and a
meta.json saying where its video is to be fetched (`url`), and a downloader adds `video.mp4` later.

- `surglavi.import_surglavi(db, out, options)`: the SurgLaVi-beta SQLite database;
- `surgatlas.import_surgatlas(path, out, fieldmap)`: SurgAtlas JSON through a field map (its schema is
  not published, see `fieldmap`), with `inspect.inspect_path` to write that map;
- `writer.write_corpus`: the writer both share (deterministic, re-import keeps downloaded videos).
"""
