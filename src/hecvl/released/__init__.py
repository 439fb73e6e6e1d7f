"""Other groups' models, scored by our evaluation: one file per family, each a `SourceFamily`.

- `surgvlp`: the SurgVLP / HecVL / PeskaVLP released checkpoints (`surgvlp_model`, `surgvlp_checkpoint`);
- `surgclip`: SurgCLIP-β (`surgclip_model`); `surglime`: SurgLIME (`surglime_model`);
- `hf_clip`: Hugging Face CLIP-family folders (`CLIPModel`, `SiglipModel`), the general-purpose baselines;
- `checkpoints`: what the checkpoint loaders share (strict layouts, vocabularies, BERT configuration);
- `common`: what the adapters share (one joint space, file and name checks, pixels).

`hecvl.models` is HecVL's own model; `hecvl.evaluation.formats` lists every family.
"""
