"""The paper's outputs: tables (CSV, Markdown, LaTeX), figures and the protocol note, from the results.

Modules: `published` (method.md §8 as data), `collect` (results files -> tidy DataFrames),
`tables` (mean ± std across seeds, writers), `figures` (seaborn), `protocol` (the protocol note),
`cli` (`hecvl paper table | build | noise`).
"""
