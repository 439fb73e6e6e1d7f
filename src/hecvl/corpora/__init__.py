"""The lecture corpus: its layout, readers and checks, and importers from public video-text corpora.

- `corpus.load_lecture(dir)` / `corpus.iter_lectures(root)` -> `Lecture`; `transcripts`: the timed-text CSVs
  and SRT/WebVTT/JSON transcript import; `validate.validate_corpus(root)` -> every `Problem` at once;
- `corpus_download` / `corpus_report`: fetch the videos an import points at, and say which are usable;
- `surglavi.import_surglavi(db, out, options)`: the SurgLaVi-beta SQLite database;
- `surgatlas.import_surgatlas(path, out, fieldmap)`: SurgAtlas JSON through a field map (its schema is
  not published, see `fieldmap`), with `inspect.inspect_path` to write that map;
- `writer.write_corpus`: the writer both importers share (deterministic, re-import keeps downloaded videos).

Neither SurgLaVi-beta nor SurgAtlas ships videos: an import writes each lecture's text files and a
meta.json saying where its video is to be fetched (`url`), and the downloader adds `video.mp4` later.
`hecvl corpus ...` is `corpus_cli`.
"""
