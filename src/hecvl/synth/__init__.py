"""The embedded default data: a synthetic surgical world with lectures and four target centres.

`hecvl synth` writes a lecture corpus and the target datasets in their published formats
(docs/synthetic.md); `hecvl synth --check` prints the sanity figures a researcher reads first.
"""
