"""Random SurgCLIP-β and SurgLIME checkpoints, and the `surgclip` package's own classes as a reference.

`import surgclip` fails with transformers 5.x (its tokenizer module), so `surgclip_package()` loads only its
`model.py` and TimeSformer modules, by file, under a stub package whose `__init__` never runs. Installed by
`make install` (`pip install --no-deps surgclip==0.1.0 einops==0.8.2`); nothing is downloaded at test time.
The SurgLIME layout (peft 0.21.2 names) is written by hand from released_models.md §3, not from our loader.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import BertConfig, BertModel

WORDS = ["the", "gall", "##bladder", "is", "cut", "clip", "##ping", "calot", "triangle", "cystic", "duct",
         "and", "artery", "dissection", "preparation", "retraction", "liver", "bed", "coagulation",
         "packaging", "cleaning", "of", "phase", "a", "photo", ".", ","]  # fmt: skip
SPECIAL = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PROMPTS = ["the gallbladder is cut.", "clipping of the cystic duct and artery", "calot triangle dissection",
           "packaging", "cleaning and coagulation of the liver bed", "retraction",
           "preparation phase"]  # fmt: skip


def write_vocab(folder: Path, size: int, words: list[str] | None = None) -> Path:
    """A lower-case WordPiece vocab.txt of exactly `size` entries: specials, `words` (WORDS), fillers."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = SPECIAL + (WORDS if words is None else words)
    vocab += [f"filler{i}" for i in range(size - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return folder


def randomise(module: torch.nn.Module, seed: int, scale: float = 0.02) -> None:
    """Add noise to every parameter, so that no two LayerNorms or zero-initialised layers are alike."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


# ---- SurgCLIP-β: the package's own classes ----------------------------------------------------------------
def surgclip_package() -> types.ModuleType:
    """The package's `model` module (SurgCLIP class), imported without `surgclip/__init__.py`."""
    if "_surgclip_ref.model" in sys.modules:
        return sys.modules["_surgclip_ref.model"]
    spec = importlib.util.find_spec("surgclip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the surgclip 0.1.0 package is not installed (make install adds it)")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, folder in (("_surgclip_ref", root), ("_surgclip_ref.models", root / "models"),
                         ("_surgclip_ref.models.timesformer", root / "models" / "timesformer")):  # fmt: skip
        stub = types.ModuleType(name)
        stub.__path__ = [str(folder)]
        sys.modules[name] = stub
    return importlib.import_module("_surgclip_ref.model")


def package_surgclip(root: Path, sizes: dict, seed: int = 0) -> torch.nn.Module:
    """The package's SurgCLIP at small sizes, random weights; its text tower built locally (no download)."""
    pkg = surgclip_package()
    vit = {"embed_dim": sizes["width"], "depth": sizes["depth"], "num_heads": sizes["heads"], "mlp_ratio": 4,
           "qkv_bias": "True", "drop_rate": 0.0, "attn_drop_rate": 0.0, "drop_path_rate": 0.1,
           "img_size": sizes["image_size"], "patch_size": sizes["patch_size"]}  # fmt: skip
    bert = {"hidden_size": sizes["text_width"], "num_hidden_layers": sizes["text_layers"],
            "num_attention_heads": sizes["text_heads"], "intermediate_size": sizes["text_ffn"],
            "vocab_size": sizes["vocab_size"], "max_position_embeddings": 512, "type_vocab_size": 2,
            "layer_norm_eps": 1e-12, "hidden_act": "gelu", "model_type": "bert",
            "pad_token_id": 0}  # fmt: skip
    (root / "vit.json").write_text(json.dumps(vit))
    (root / "bert.json").write_text(json.dumps(bert))
    config = SimpleNamespace(
        num_frames=sizes["num_frames"], gradient_checkpointing=False,
        model=SimpleNamespace(
            embed_dim=sizes["embed_dim"], temp=0.07, vit_add_ln=True,
            vision_encoder=SimpleNamespace(d_model=sizes["width"], config=str(root / "vit.json")),
            text_encoder=SimpleNamespace(d_model=sizes["text_width"], config=str(root / "bert.json")),
            temporal_modeling=SimpleNamespace(enabled=True),
        ),
    )  # fmt: skip

    class LocalSurgCLIP(pkg.SurgCLIP):
        def build_text_encoder(self):  # the package's from_pretrained("bert-base-uncased") downloads
            return BertModel(BertConfig.from_json_file(self.config.model.text_encoder.config),
                             add_pooling_layer=False)  # fmt: skip

    torch.manual_seed(seed)
    model = LocalSurgCLIP(config, tokenizer=None).eval()
    randomise(model, seed)
    return model


# ---- SurgLIME: the peft 0.21.2 layout, by hand -------------------------------------------------------------
def surglime_parts(sizes: dict, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random weights of every SurgLIME part under their own module's names, LoRA unmerged.

    {vision, text, heads}: vision = timm-style ViT keys, qkv as `attn.qkv.base_layer` + `lora_A/B.default`;
    text = BertModel (with pooler) keys, query/value the same way; heads = temporal_pool, projections, scale.
    """
    gen = torch.Generator().manual_seed(seed)
    w, r, tw = sizes["width"], sizes["rank"], sizes["text_width"]

    def rnd(*shape: int, scale: float = 0.02, mean: float = 0.0) -> torch.Tensor:
        return mean + scale * torch.randn(*shape, generator=gen)

    def ln(sd: dict, name: str, n: int) -> None:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = rnd(n, scale=0.1, mean=1.0), rnd(n, scale=0.1)

    def lin(sd: dict, name: str, out_f: int, in_f: int) -> None:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = rnd(out_f, in_f, scale=in_f**-0.5), rnd(out_f)

    def lora(sd: dict, name: str, out_f: int, in_f: int) -> None:
        lin(sd, f"{name}.base_layer", out_f, in_f)
        sd[f"{name}.lora_A.default.weight"] = rnd(r, in_f, scale=in_f**-0.5)
        sd[f"{name}.lora_B.default.weight"] = rnd(out_f, r, scale=0.05)  # trained: no longer zero

    p, n = sizes["patch_size"], (sizes["image_size"] // sizes["patch_size"]) ** 2
    vision = {"cls_token": rnd(1, 1, w), "pos_embed": rnd(1, n + 1, w),
              "patch_embed.proj.weight": rnd(w, 3, p, p, scale=(3 * p * p) ** -0.5),
              "patch_embed.proj.bias": rnd(w)}  # fmt: skip
    for i in range(sizes["depth"]):
        b = f"blocks.{i}"
        ln(vision, f"{b}.norm1", w)
        lora(vision, f"{b}.attn.qkv", 3 * w, w)
        lin(vision, f"{b}.attn.proj", w, w)
        ln(vision, f"{b}.norm2", w)
        lin(vision, f"{b}.mlp.fc1", 4 * w, w)
        lin(vision, f"{b}.mlp.fc2", w, 4 * w)
    ln(vision, "norm", w)

    cfg = BertConfig(vocab_size=sizes["vocab_size"], hidden_size=tw, num_hidden_layers=sizes["text_layers"],
                     num_attention_heads=sizes["text_heads"], intermediate_size=sizes["text_ffn"])
    with torch.device("meta"):  # only the names and shapes of transformers' BertModel, nothing allocated
        names = {k: tuple(v.shape) for k, v in BertModel(cfg, add_pooling_layer=True).state_dict().items()}
    bert_sd = {k: rnd(*shape, scale=0.1, mean=1.0) if k.endswith("LayerNorm.weight") else rnd(*shape)
               for k, shape in names.items()}  # fmt: skip
    text = {}
    for key, value in bert_sd.items():
        for proj in ("query", "value"):
            tail = f".attention.self.{proj}."
            if tail in key:
                base = key.split(tail)[0] + tail[:-1]
                if key.endswith("weight"):
                    text[f"{base}.base_layer.weight"] = value.clone()
                    text[f"{base}.lora_A.default.weight"] = rnd(r, tw, scale=tw**-0.5)
                    text[f"{base}.lora_B.default.weight"] = rnd(tw, r, scale=0.05)
                else:
                    text[f"{base}.base_layer.bias"] = value.clone()
                break
        else:
            text[key] = value.clone()

    heads: dict[str, torch.Tensor] = {}
    lin(heads, "temporal_pool.attention.0", w // 2, w)
    lin(heads, "temporal_pool.attention.2", 1, w // 2)
    for name, width in (("vision_proj", w), ("text_proj", tw)):
        lin(heads, f"{name}.0", width, width)
        ln(heads, f"{name}.1", width)
        lin(heads, f"{name}.3", sizes["embed_dim"], width)
    heads["logit_scale"] = torch.tensor(2.6592)  # log(1 / 0.07)
    return {"vision": vision, "text": text, "heads": heads}


def surglime_state_dict(parts: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The file's layout: each backbone tensor under both of its names, sharing storage, as peft saves it."""
    sd: dict[str, torch.Tensor] = {}
    for key, value in parts["vision"].items():
        sd[f"vision_base.{key}"] = value
        sd[f"vision_encoder.base_model.model.{key}"] = value
    for key, value in parts["text"].items():
        sd[f"text_base.{key}"] = value
        sd[f"text_encoder.base_model.model.{key}"] = value
    sd.update(parts["heads"])
    return sd


# ---- full-size random files, once per test session --------------------------------------------------------
_BASE = dict(image_size=224, patch_size=16, width=768, depth=12, heads=12, embed_dim=256, vocab_size=30522,
             text_width=768, text_layers=12, text_heads=12, text_ffn=3072)  # fmt: skip
FULL_SURGCLIP = {**_BASE, "num_frames": 16}
FULL_SURGLIME = {**_BASE, "rank": 16}
_SHARED: dict[str, dict] = {}


def shared_surgclip(factory: pytest.TempPathFactory) -> dict:
    """The package's SurgCLIP at SurgCLIP-β's sizes, random, saved (0.9 GB): {model, ckpt, bert_dir}."""
    if "surgclip" not in _SHARED:
        root = factory.mktemp("surgclip_full")
        model = package_surgclip(root, FULL_SURGCLIP, seed=3)
        torch.save(model.state_dict(), root / "surgclip_beta.pth")
        bert_dir = write_vocab(root / "bert-base-uncased", FULL_SURGCLIP["vocab_size"])
        _SHARED["surgclip"] = {"model": model, "ckpt": root / "surgclip_beta.pth", "bert_dir": bert_dir}
    return _SHARED["surgclip"]


def shared_surglime(factory: pytest.TempPathFactory) -> dict:
    """A SurgLIME file at the released sizes in the peft layout, random (0.8 GB): {ckpt, bert_dir}."""
    if "surglime" not in _SHARED:
        root = factory.mktemp("surglime_full")
        torch.save(surglime_state_dict(surglime_parts(FULL_SURGLIME, seed=4)), root / "surglime.pth")
        bert_dir = write_vocab(root / "PubMedBERT", FULL_SURGLIME["vocab_size"])
        _SHARED["surglime"] = {"ckpt": root / "surglime.pth", "bert_dir": bert_dir}
    return _SHARED["surglime"]
