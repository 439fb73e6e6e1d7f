"""A random checkpoint in the released SurgVLP / HecVL / PeskaVLP layout, for the tests that need one.

The layout is restated from checkpoints.md §2 independently of the package (the loader under test must
not grade its own homework). Writing the full-size file takes about 10 s and 534 MB, so `shared_released`
builds it once per test session for every module that uses it (read-only for them).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

IMG = "backbone_img.model."
TXT = "backbone_text.model."
VOCAB_SIZE = 28996
WORDS = [
    "the", "gall", "##bladder", "is", "cut", "clip", "##per", "##ped", "##s", "calot", "triangle", "cystic",
    "duct", "and", "artery", "are", "dissection", "preparation", "retraction", "liver", "bed", "coagulation",
    "Cut", "Calot", "##tion", "dis", "##sec", ".", ",", ":", "e",
]  # "Cut"/"Calot" are cased entries: a lower-casing tokenizer never produces them


# ---- the released layout, restated from checkpoints.md §2 -------------------------------------------------
def bert_config() -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB_SIZE, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
        hidden_act="gelu", attn_implementation="eager",
    )


def random_resnet50(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """torchvision resnet50 keys (no fc) with random He-scaled convs and random batch-norm statistics."""
    sd: dict[str, torch.Tensor] = {}

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        sd[name] = torch.randn(cout, cin, k, k, generator=gen) * math.sqrt(2.0 / (cin * k * k))

    def bn(name: str, c: int, gamma: float = 1.0) -> None:
        sd[f"{name}.weight"] = gamma * (1 + 0.1 * torch.randn(c, generator=gen))
        sd[f"{name}.bias"] = 0.1 * torch.randn(c, generator=gen)
        sd[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=gen)
        sd[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=gen)
        sd[f"{name}.num_batches_tracked"] = torch.randint(0, 10**6, (), generator=gen)

    conv("conv1.weight", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            conv(f"{p}.conv1.weight", width, cin, 1)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2.weight", width, width, 3)
            bn(f"{p}.bn2", width)
            conv(f"{p}.conv3.weight", width * 4, width, 1)
            bn(f"{p}.bn3", width * 4, gamma=0.3)  # keeps the residual stream's scale moderate
            if b == 0:
                conv(f"{p}.downsample.0.weight", width * 4, cin, 1)
                bn(f"{p}.downsample.1", width * 4)
            cin = width * 4
    return sd


def build_released(root: Path) -> dict:
    """A random released checkpoint on disk, the BERT it came from, and a Bio_ClinicalBERT-shaped vocab.

    Returns {state, ckpt (root/HecVL.pth, ~534 MB), bert, bert_dir, resnet}; takes about 10 s.
    """
    gen = torch.Generator().manual_seed(7)
    resnet = random_resnet50(gen)
    torch.manual_seed(7)
    bert = BertModel(bert_config(), add_pooling_layer=True).eval()
    with torch.no_grad():
        for p in bert.parameters():  # no two LayerNorms or biases alike, so a swapped key would show
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    state = {IMG + k: v for k, v in resnet.items()}
    state["backbone_img.global_embedder.weight"] = torch.randn(768, 2048, generator=gen) / math.sqrt(2048)
    state["backbone_img.global_embedder.bias"] = 0.1 * torch.randn(768, generator=gen)
    state.update({TXT + k: v.detach().clone() for k, v in bert.state_dict().items()})
    state[TXT + "embeddings.position_ids"] = torch.arange(512).unsqueeze(0)  # saved by transformers 4.30

    ckpt = root / "HecVL.pth"
    torch.save(state, ckpt)
    bert_dir = root / "Bio_ClinicalBERT"
    bert_dir.mkdir()
    special = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = special + WORDS
    vocab += [f"filler{i}" for i in range(VOCAB_SIZE - len(vocab))]
    (bert_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # what the Hub repo has beside vocab.txt, so that AutoTokenizer resolves it as the original did
    (bert_dir / "config.json").write_text('{"model_type": "bert", "vocab_size": 28996}', encoding="utf-8")
    return {"state": state, "ckpt": ckpt, "bert": bert, "bert_dir": bert_dir, "resnet": resnet}


_SHARED: dict[str, dict] = {}


def shared_released(factory: pytest.TempPathFactory) -> dict:
    """`build_released` once per session, in a session temporary folder."""
    if "released" not in _SHARED:
        _SHARED["released"] = build_released(factory.mktemp("released"))
    return _SHARED["released"]
