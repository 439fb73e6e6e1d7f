"""The released SurgVLP / HecVL / PeskaVLP loader and forward pass, against a literal re-implementation.

A random checkpoint is written in the released layout (checkpoints.md §2, restated in
tests/released_helpers.py independently of the package), loaded with `load_released`, and its
embeddings are compared with the documented forward written out in this file: ResNet-50 with
torch.nn.functional over the torchvision-layout keys, and the original word-piece merge walking the
tokens one by one.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from released_helpers import IMG, TXT, VOCAB_SIZE, shared_released
from tokenizer_helpers import TEXTS as TOKENIZER_TEXTS
from tokenizer_helpers import piece_ids, read_vocab, write_tokenizer_vocab
from transformers import AutoTokenizer, BertModel

from hecvl.errors import HecvlError
from hecvl.released.surgvlp_checkpoint import read_released_checkpoint, released_layout
from hecvl.released.surgvlp_model import (
    ReleasedModel,
    load_bio_clinical_bert_tokenizer,
    load_released,
    normalise_crops,
    resize_and_crop,
    score,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A random released checkpoint on disk, the BERT it came from, and a Bio_ClinicalBERT-shaped vocab."""
    return shared_released(tmp_path_factory)


@pytest.fixture(scope="module")
def model(reference: dict):
    return load_released(reference["ckpt"], reference["bert_dir"])


# ---- literal re-implementation of the documented forward ------------------------------------------------
def literal_preprocess(frame: np.ndarray | Image.Image) -> torch.Tensor:
    """transforms.Resize((360, 640)) on PIL, CenterCrop(224), RGB, ToTensor, Normalize(ImageNet)."""
    img = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
    img = img.resize((640, 360), Image.BILINEAR)
    top, left = round((360 - 224) / 2.0), round((640 - 224) / 2.0)  # torchvision's int(round(...))
    assert (top, left) == (68, 208)  # rows 68..291, cols 208..431 as documented
    img = img.crop((left, top, left + 224, top + 224)).convert("RGB")
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return (x - mean) / std


def literal_image_embedding(state: dict, x: torch.Tensor) -> torch.Tensor:
    """torchvision resnet50 (fc = Identity) -> global average pool -> global_embedder, written out."""
    sd = {k[len(IMG) :]: v for k, v in state.items() if k.startswith(IMG)}

    def bn(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(
            t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
            training=False, eps=1e-5,
        )

    x = F.relu(bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for stage, blocks in enumerate([3, 4, 6, 3], start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            stride = 2 if (b == 0 and stage > 1) else 1  # v1.5: the stride sits on the 3x3
            out = F.relu(bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1), f"{p}.bn2"))
            out = bn(F.conv2d(out, sd[f"{p}.conv3.weight"]), f"{p}.bn3")
            if b == 0:
                x = bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + x)
    pooled = x.mean(dim=(2, 3))
    weight, bias = state["backbone_img.global_embedder.weight"], state["backbone_img.global_embedder.bias"]
    return F.linear(pooled, weight, bias)


def literal_text_embedding(
    bert: BertModel, bert_dir: Path, texts: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """surgvlp.tokenize + BertEncoder(last_n_layers=4, aggregate='sum', agg_tokens=True), token by token."""
    tokenizer = AutoTokenizer.from_pretrained(str(bert_dir), local_files_only=True)
    idxtoword = {v: k for k, v in tokenizer.get_vocab().items()}
    enc = [
        tokenizer(t, return_tensors="pt", truncation=True, padding="max_length", max_length=77) for t in texts
    ]
    ids = torch.cat([e["input_ids"] for e in enc])
    mask = torch.cat([e["attention_mask"] for e in enc])
    token_type = torch.cat([e["token_type_ids"] for e in enc])
    with torch.no_grad():
        hidden = bert(ids, mask, token_type, output_hidden_states=True).hidden_states
    layers = torch.stack(hidden[-4:])  # (4, B, 77, 768)
    sentences = []
    for b in range(len(texts)):
        words: list[torch.Tensor] = []
        bank: list[torch.Tensor] = []
        for pos in range(ids.shape[1]):
            word = idxtoword[ids[b, pos].item()]
            vec = layers[:, b, pos]  # (4, 768)
            if word == "[SEP]":
                words.append(torch.stack(bank).sum(0))
                words.append(vec)
                break
            if word.startswith("##"):
                bank.append(vec)
            else:
                if bank:
                    words.append(torch.stack(bank).sum(0))
                bank = [vec]
        words += [torch.zeros(4, 768)] * (77 - len(words))
        sentences.append(torch.stack(words).mean(dim=0).sum(dim=0))  # mean over 77 slots, sum over 4 layers
    return torch.stack(sentences), ids


def _close(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-5) -> None:
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale)


# ---- loading ----------------------------------------------------------------------------------------------
def test_layout_is_the_documented_520_keys(reference: dict) -> None:
    state = reference["state"]
    assert len(state) == 520
    assert sum(k.endswith("num_batches_tracked") for k in state) == 53
    assert sum(k.startswith(IMG) for k in state) == 318
    assert sum(k.startswith(TXT) for k in state) == 200
    assert {k: tuple(v.shape) for k, v in state.items()} == released_layout()


def test_every_key_is_used(reference: dict, model) -> None:
    state = reference["state"]
    loaded = model.released_state_dict()
    # transformers >= 4.31 keeps position_ids out of the state dict: the only key not stored
    assert set(state) - set(loaded) == {TXT + "embeddings.position_ids"}
    assert set(loaded) <= set(state)
    for key, value in loaded.items():
        assert torch.equal(value.cpu(), state[key].to(value.dtype)), key
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 133_391_936
    assert not model.training


def test_unwrapping_state_dict_module_prefix_and_position_ids(reference: dict, tmp_path: Path) -> None:
    # tiny stand-ins: every tensor a broadcast constant of the documented shape, so files are a few kB
    layout = released_layout()
    flat = {}
    for i, (key, shape) in enumerate(sorted(layout.items())):
        if key.endswith("position_ids"):
            flat[key] = torch.arange(512).unsqueeze(0)
        elif key.endswith("num_batches_tracked"):
            flat[key] = torch.tensor(i)
        else:
            flat[key] = torch.full((), float(i)).expand(shape)
    variants = {
        "flat.pth": flat,
        "no_position_ids.pth": {k: v for k, v in flat.items() if not k.endswith("position_ids")},
        "training.pth.tar": {
            "epoch": 12,
            "state_dict": {"module." + k: v for k, v in flat.items()},
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-5}]},
        },
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
        got = read_released_checkpoint(tmp_path / name)
        expected = {k: v for k, v in flat.items() if name != "no_position_ids.pth" or "position_ids" not in k}
        assert set(got) == set(expected), name
        assert all(torch.equal(got[k], expected[k]) for k in expected), name


def test_model_loads_without_position_ids(reference: dict, model) -> None:
    state = {k: v for k, v in reference["state"].items() if not k.endswith("position_ids")}
    model.load_released_state_dict(state)  # same weights again: strict, nothing missing
    words = state[TXT + "embeddings.word_embeddings.weight"]
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, words)


def _tiny_state() -> dict[str, torch.Tensor]:
    out = {}
    for key, shape in released_layout().items():
        if key.endswith(("num_batches_tracked", "position_ids")):
            out[key] = torch.arange(512).unsqueeze(0) if key.endswith("position_ids") else torch.tensor(0)
        else:
            out[key] = torch.zeros(()).expand(shape)
    return out


def test_wrong_layout_is_refused_with_what_differs(tmp_path: Path) -> None:
    state = _tiny_state()
    state["backbone_img.global_embedder.weight"] = torch.zeros(()).expand(768, 1024)
    del state[IMG + "layer4.2.bn3.running_var"]
    del state[TXT + "pooler.dense.bias"]
    state[IMG + "fc.weight"] = torch.zeros(()).expand(1000, 2048)
    state[IMG + "layer1.0.bn1.num_batches_tracked"] = torch.tensor(0.5)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(HecvlError) as err:
        read_released_checkpoint(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "2 missing keys" in msg and "layer4.2.bn3.running_var" in msg and "pooler.dense.bias" in msg
    assert "1 unexpected keys" in msg and "fc.weight" in msg
    assert "2 wrong shape/dtype" in msg and "(768, 1024) != (768, 2048)" in msg
    assert "num_batches_tracked dtype torch.float32" in msg


def test_many_differences_are_counted_not_all_listed(tmp_path: Path) -> None:
    state = {k.replace("backbone_text.model.", "bert."): v for k, v in _tiny_state().items()}
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(HecvlError, match=r"199 missing keys: .*\(194 more\).*200 unexpected keys: bert\."):
        read_released_checkpoint(path)


def test_position_ids_must_be_arange(tmp_path: Path) -> None:
    state = _tiny_state()
    state[TXT + "embeddings.position_ids"] = torch.zeros(1, 512, dtype=torch.long)
    torch.save(state, tmp_path / "pos.pth")
    with pytest.raises(HecvlError, match=r"position_ids is not 0\.\.511"):
        read_released_checkpoint(tmp_path / "pos.pth")


class _TrainingConfig:  # a pickled Python object, as a careless training script would save
    lr = 1e-5


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "with_object.pth"
    torch.save({"state_dict": _tiny_state(), "cfg": _TrainingConfig()}, path)
    with pytest.raises(HecvlError) as err:
        read_released_checkpoint(path)
    msg = str(err.value)
    assert str(path) in msg and "pickled Python objects" in msg and "_TrainingConfig" in msg


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))  # what a malicious file would do: run code when unpickled


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_raw_pickle_with_a_payload_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"backbone_img.global_embedder.bias": _Payload(marker)}))
    with pytest.raises(HecvlError, match="pickled Python objects"):
        read_released_checkpoint(path)
    assert not marker.exists()


def test_unreadable_and_non_state_dict_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(HecvlError, match="not found"):
        read_released_checkpoint(tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    with pytest.raises(HecvlError, match="not a readable PyTorch checkpoint"):
        read_released_checkpoint(junk)
    (tmp_path / "text.pth").write_bytes(b"not a checkpoint at all")  # not a zip: the raw-pickle path
    with pytest.raises(HecvlError, match="not a readable PyTorch checkpoint") as err:
        read_released_checkpoint(tmp_path / "text.pth")
    assert "pickled Python objects" not in str(err.value)
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    with pytest.raises(HecvlError, match="found list"):
        read_released_checkpoint(tmp_path / "list.pth")
    torch.save({"a": torch.zeros(3), "epoch": 3}, tmp_path / "mixed.pth")
    with pytest.raises(HecvlError, match="1 entries are not"):
        read_released_checkpoint(tmp_path / "mixed.pth")


def test_bert_dir_must_hold_the_bio_clinical_bert_vocab(reference: dict, tmp_path: Path) -> None:
    with pytest.raises(HecvlError, match=r"no vocab\.txt"):
        load_bio_clinical_bert_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n", encoding="utf-8")
    with pytest.raises(HecvlError, match="6 entries; Bio_ClinicalBERT's has 28996"):
        load_bio_clinical_bert_tokenizer(tmp_path)
    with pytest.raises(HecvlError, match=r"vocab\.txt"):  # refused before the 500 MB checkpoint is read
        load_released(reference["ckpt"], tmp_path)


# ---- forward ----------------------------------------------------------------------------------------------
def _frames() -> list:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, size=(480, 854, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:1080, 0:1920]
    smooth = np.stack([xx * 255 // 1919, yy * 255 // 1079, (xx + yy) % 256], axis=-1).astype(np.uint8)
    exact = rng.integers(0, 256, size=(360, 640, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(300, 400), dtype=np.uint8)
    pil_gray = Image.fromarray(gray)  # mode "L": converted to RGB after the crop, as the original
    return [noise, smooth, exact, pil_gray]


def test_image_embeddings_equal_the_literal_forward(reference: dict, model) -> None:
    frames = _frames()
    expected_pixels = torch.stack([literal_preprocess(f) for f in frames])
    pixels = model.preprocess(frames)
    assert pixels.shape == (4, 3, 224, 224) and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels, expected_pixels, rtol=0, atol=1e-6)
    from_tensor = model.preprocess(torch.from_numpy(frames[1]))  # a uint8 (H, W, 3) tensor works too
    torch.testing.assert_close(from_tensor[0], expected_pixels[1], rtol=0, atol=1e-6)
    with torch.no_grad():
        expected = literal_image_embedding(reference["state"], expected_pixels)
    got = model.embed_images(frames, batch_size=3)  # two batches
    assert got.shape == (4, 768)
    _close(got, expected)
    # a (N, H, W, 3) array and the cached-crops route give the same vectors
    _close(model.embed_images(frames[0][None]), expected[:1])
    crops = resize_and_crop(frames)
    assert crops.shape == (4, 224, 224, 3) and crops.dtype == np.uint8
    torch.testing.assert_close(normalise_crops(crops), expected_pixels, rtol=0, atol=1e-6)
    _close(model.embed_crops(crops[1:2]), expected[1:2])


def test_real_video_frame(real_clip: Path, reference: dict, model) -> None:
    import av

    with av.open(str(real_clip)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert frame.shape == (1080, 1920, 3)
    with torch.no_grad():
        expected = literal_image_embedding(reference["state"], literal_preprocess(frame).unsqueeze(0))
    _close(model.embed_images(frame), expected)


TEXTS = [
    "Calot triangle dissection: the cystic duct and artery are clipped and cut.",
    "GALLBLADDER Dissection",  # upper case: lower-cased, so "gall ##bladder", "dissection"
    "Préparation, retraction of the liver bed.",  # accent stripped with lower-casing
    "clip [SEP] cut the cystic duct",  # an early [SEP]: the original stops there
    "",
]


def test_text_embeddings_equal_the_literal_word_piece_merge(reference: dict, model) -> None:
    expected, ids = literal_text_embedding(reference["bert"], reference["bert_dir"], TEXTS)
    tokens = model.tokenize(TEXTS)
    assert torch.equal(tokens["input_ids"], ids)
    assert tokens["input_ids"].shape == (5, 77)
    assert torch.equal(tokens["token_type_ids"], torch.zeros(5, 77, dtype=torch.long))
    got = model.embed_texts(TEXTS)
    assert got.shape == (5, 768)
    _close(got, expected)
    # the early [SEP] matters: summing all attention-masked positions would give another vector
    mask = tokens["attention_mask"][3].bool()
    assert mask.sum() > (tokens["input_ids"][3] == 102).int().argmax() + 1


def test_tokenizer_lower_cases_and_strips_accents(model) -> None:
    tok = model.tokenize(["The GALLBLADDER is CUT", "the gallbladder is cut", "Préparation", "preparation"])
    ids = tok["input_ids"]
    assert torch.equal(ids[0], ids[1]) and torch.equal(ids[2], ids[3])
    words = model.tokenizer.convert_ids_to_tokens(ids[0][:8].tolist())
    assert words == ["[CLS]", "the", "gall", "##bladder", "is", "cut", "[SEP]", "[PAD]"]
    assert int(tok["attention_mask"][0].sum()) == 7


def surgvlp_rule(texts: list[str], vocab: dict[str, int]) -> dict[str, torch.Tensor]:
    """`surgvlp.tokenize`: each text alone through Bio_ClinicalBERT's AutoTokenizer (lower-casing) with
    padding="max_length", max_length=77, truncation=True: [CLS] + at most 75 pieces + [SEP], [PAD] (0) to
    77, the mask over [CLS]..[SEP], token types 0."""
    rows = [[vocab["[CLS]"], *piece_ids(text, vocab)[:75], vocab["[SEP]"]] for text in texts]
    ids = torch.tensor([row + [vocab["[PAD]"]] * (77 - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (77 - len(row)) for row in rows])
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def test_token_ids_follow_the_surgvlp_rule(tmp_path: Path) -> None:
    """Accents, CJK, punctuation, whitespace and control characters, an empty text, an over-long word,
    and an over-long text: 75 pieces kept, then [SEP]."""
    bert_dir = write_tokenizer_vocab(tmp_path / "Bio_ClinicalBERT", VOCAB_SIZE)
    model = ReleasedModel(load_bio_clinical_bert_tokenizer(bert_dir))  # random weights: only the tokenizer
    vocab = read_vocab(bert_dir)
    long_text = "the gallbladder is cut " * 20  # 100 word pieces
    texts = [*TOKENIZER_TEXTS, long_text]
    with pytest.warns(UserWarning, match="truncated from 102 to 77 tokens"):
        tokens = model.tokenize(texts)
    expected = surgvlp_rule(texts, vocab)
    assert set(tokens) == set(expected)
    for key, value in expected.items():
        assert torch.equal(tokens[key], value), key
    assert tokens["input_ids"][-1, 1:76].tolist() == piece_ids(long_text, vocab)[:75]


def test_long_texts_are_truncated_to_77_with_a_warning(reference: dict, model) -> None:
    long_text = "the gallbladder is cut " * 30
    with pytest.warns(UserWarning, match="truncated from 152 to 77 tokens"):
        got = model.embed_texts([long_text])
    expected, ids = literal_text_embedding(reference["bert"], reference["bert_dir"], [long_text])
    assert int(ids[0, -1]) == 102  # [SEP] kept as the 77th token
    _close(got, expected)


def test_score_is_100_cosine_and_argmax_predicts() -> None:
    gen = torch.Generator().manual_seed(0)
    txt = torch.randn(7, 768, generator=gen)
    img = 3.0 * txt[[4, 0, 6]] + 0.01 * torch.randn(3, 768, generator=gen)
    logits = score(img, txt)
    assert logits.shape == (3, 7)
    expected = 100.0 * F.cosine_similarity(img[:, None, :], txt[None, :, :], dim=-1)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)
    assert logits.argmax(1).tolist() == [4, 0, 6]
    assert float(logits.max()) <= 100.0 + 1e-4
    torch.testing.assert_close(score(5 * img, 0.1 * txt), logits, rtol=1e-5, atol=1e-4)
