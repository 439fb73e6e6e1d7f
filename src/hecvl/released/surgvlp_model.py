"""The released SurgVLP / HecVL / PeskaVLP models with their original zero-shot forward pass.

Why a separate model: the authors' weights only reproduce their numbers with their exact pipeline
(PIL resize to 360x640, centre crop 224, ResNet-50 + 2048->768 linear; Bio_ClinicalBERT, 77 lower-cased
tokens, sum of the last 4 layers' word-merged mean), which differs from our own encoders in every step.
Every fact here is from docs/checkpoints.md §1-5. No network: the vocabulary comes from a local
Bio_ClinicalBERT folder and the weights from a local .pth file.

    model = load_released("HecVL.pth", "models/Bio_ClinicalBERT")
    logits = score(model.embed_images(frames), model.embed_texts(prompts))   # (N frames, C classes)
    pred = logits.argmax(1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm
from transformers import BertConfig, BertModel, BertTokenizer, ResNetModel

from hecvl.config.model import IMAGENET_MEAN, IMAGENET_STD, VisualConfig
from hecvl.models.resnet_keys import hf_to_torchvision, torchvision_to_hf
from hecvl.models.visual_encoder import resnet_config
from hecvl.released.checkpoints import bert_config, load_vocab_tokenizer, warn_truncated
from hecvl.released.surgvlp_checkpoint import (
    BERT_FFN,
    BERT_LAYERS,
    BERT_MAX_POS,
    BERT_VOCAB,
    EMBED_DIM,
    EMBEDDER_PREFIX,
    IMAGE_DIM,
    IMG_PREFIX,
    TEXT_PREFIX,
    read_released_checkpoint,
)

RESIZE_HW = (360, 640)  # the original `transforms.Resize((360, 640))`: exact size, aspect ratio ignored
CROP = 224
MAX_TOKENS = 77
LAST_N_LAYERS = 4
LOGIT_SCALE = 100.0  # a hard-coded constant in the original scoring, not a learned parameter

ImageInput = np.ndarray | torch.Tensor | Image.Image | Sequence[np.ndarray | Image.Image]


def bio_clinical_bert_config() -> BertConfig:
    """Bio_ClinicalBERT's architecture; eager attention as in transformers 4.30, which the authors pinned."""
    return bert_config(BERT_VOCAB, EMBED_DIM, BERT_LAYERS, 12, BERT_FFN, BERT_MAX_POS,
                       attn_implementation="eager")


def load_bio_clinical_bert_tokenizer(bert_dir: str | Path) -> BertTokenizer:
    """The WordPiece tokenizer from `bert_dir/vocab.txt`, lower-casing (and so accent-stripping).

    Lower-casing is forced: `AutoTokenizer` on the authors' Bio_ClinicalBERT repo lower-cases although the
    vocabulary is cased (checkpoints.md §3), whatever a local tokenizer_config.json might say.
    """
    return load_vocab_tokenizer(
        bert_dir, BERT_VOCAB, "Bio_ClinicalBERT",
        size_note=f"Bio_ClinicalBERT's has {BERT_VOCAB} (a different vocabulary would map words to the wrong "
        "embeddings)",
    )  # fmt: skip


def resize_and_crop(images: ImageInput) -> np.ndarray:
    """The original image chain up to the tensor: uint8 (N, 224, 224, 3) RGB.

    PIL `resize((640, 360), BILINEAR)` (torchvision's PIL path, antialiased), centre crop 224 with
    torchvision's rounding (rows 68..291, cols 208..431), then RGB conversion. Accepts a PIL image, an
    RGB uint8 array/tensor (H, W, 3) or (N, H, W, 3), or a sequence of arrays/PIL images of any sizes.
    Useful on its own to cache crops, which `embed_crops` then embeds.
    """
    out = [_resize_crop_one(im) for im in _as_image_list(images)]
    if not out:
        return np.zeros((0, CROP, CROP, 3), dtype=np.uint8)
    return np.stack(out)


def _as_image_list(images: ImageInput) -> list[Image.Image | np.ndarray]:
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            return [images]
        if images.ndim == 4:
            return list(images)
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3) frames, got shape {images.shape}")
    return list(images)


def _resize_crop_one(image: Image.Image | np.ndarray) -> np.ndarray:
    if not isinstance(image, Image.Image):
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"expected uint8 RGB frames (H, W, 3), got {arr.dtype} {arr.shape}")
        image = Image.fromarray(np.ascontiguousarray(arr))
    height, width = RESIZE_HW
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    top = round((height - CROP) / 2.0)  # torchvision CenterCrop: int(round((H - h) / 2))
    left = round((width - CROP) / 2.0)
    image = image.crop((left, top, left + CROP, top + CROP)).convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def normalise_crops(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """ToTensor + ImageNet Normalize of uint8 (N, 224, 224, 3) crops -> float32 (N, 3, 224, 224)."""
    x = torch.as_tensor(np.asarray(crops))
    if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != (CROP, CROP, 3):
        raise ValueError(f"expected uint8 crops (N, {CROP}, {CROP}, 3), got {x.dtype} {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def sum_last4_pool(
    hidden_states: Sequence[torch.Tensor], input_ids: torch.Tensor, attention_mask: torch.Tensor, sep_id: int
) -> torch.Tensor:
    """The original sentence embedding, in closed form: (B, D).

    The original walks each sentence's tokens, sums `##` word pieces into their word, appends the first
    `[SEP]` as its own entry, stops there, zero-pads the word list back to L (= 77), takes the mean over
    the L slots and sums that over the last 4 layers. Merging by summation keeps the total, so this equals
    sum over the last 4 layers of sum over positions 0..first [SEP] (inclusive) of h, divided by L.

    Caveat (early [SEP]): the commonly quoted closed form sums over all attention-masked positions, which
    is wrong when the text itself yields a `[SEP]` token (e.g. the literal string "[SEP]"): the original
    stops at the FIRST [SEP] and drops the rest. We cut the mask at the first [SEP], which reproduces
    that; every row must contain a [SEP] (the tokenizer always appends one, also when truncating).
    """
    has_sep = (input_ids == sep_id).any(dim=1)
    if not bool(has_sep.all()):
        raise ValueError("every tokenised text must contain [SEP]")
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    first_sep = (input_ids == sep_id).int().argmax(dim=1, keepdim=True)
    keep = (positions.unsqueeze(0) <= first_sep) & attention_mask.bool()
    summed = torch.stack(list(hidden_states[-LAST_N_LAYERS:])).sum(dim=0)  # (B, L, D)
    return (summed * keep.unsqueeze(-1).to(summed.dtype)).sum(dim=1) / input_ids.shape[1]


def score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Zero-shot logits (N images, C texts): 100 x cosine similarity; the prediction is `.argmax(1)`."""
    img = torch.nn.functional.normalize(image_emb.float(), dim=-1)
    txt = torch.nn.functional.normalize(text_emb.float(), dim=-1)
    return LOGIT_SCALE * img @ txt.T


class ReleasedModel(torch.nn.Module):
    """ResNet-50 + `global_embedder` image tower and Bio_ClinicalBERT text tower, in eval mode, fp32.

    Embeddings are returned unnormalised on the CPU, as the original `img_emb` / `text_emb`; `score`
    normalises them.
    """

    def __init__(self, tokenizer: BertTokenizer) -> None:
        super().__init__()
        # torchvision's resnet50 as a transformers ResNetModel (checkpoints.md §5)
        self.resnet = ResNetModel(resnet_config(VisualConfig(preset="resnet50")))
        self.global_embedder = torch.nn.Linear(IMAGE_DIM, EMBED_DIM)
        self.bert = BertModel(bio_clinical_bert_config(), add_pooling_layer=True)  # pooler: loaded, unused
        self.tokenizer = tokenizer
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.global_embedder.weight.device

    # ---- weights -------------------------------------------------------------------------------------
    def load_released_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a checked released state dict (canonical keys) strictly; every key must land somewhere."""
        img = {k: v for k, v in state.items() if k.startswith(IMG_PREFIX)}
        txt = {k[len(TEXT_PREFIX) :]: v for k, v in state.items() if k.startswith(TEXT_PREFIX)}
        emb = {k[len(EMBEDDER_PREFIX) :]: v for k, v in state.items() if k.startswith(EMBEDDER_PREFIX)}
        leftover = set(state) - set(img) - {TEXT_PREFIX + k for k in txt} - {EMBEDDER_PREFIX + k for k in emb}
        if leftover:
            raise ValueError(f"keys outside the released layout: {sorted(leftover)[:5]}")
        if "embeddings.position_ids" not in self.bert.state_dict():
            txt.pop("embeddings.position_ids", None)  # a non-persistent buffer since transformers 4.31
        self.resnet.load_state_dict(torchvision_to_hf(img, prefix=IMG_PREFIX), strict=True)
        self.global_embedder.load_state_dict(emb, strict=True)
        self.bert.load_state_dict(txt, strict=True)

    def released_state_dict(self) -> dict[str, torch.Tensor]:
        """This model's weights under the released checkpoint's keys (the inverse of loading)."""
        out = {IMG_PREFIX + k: v for k, v in hf_to_torchvision(self.resnet.state_dict()).items()}
        out.update({EMBEDDER_PREFIX + k: v for k, v in self.global_embedder.state_dict().items()})
        out.update({TEXT_PREFIX + k: v for k, v in self.bert.state_dict().items()})
        return out

    # ---- images --------------------------------------------------------------------------------------
    def preprocess(self, images: ImageInput) -> torch.Tensor:
        """The original transform: frames of any size -> normalised float32 (N, 3, 224, 224)."""
        return normalise_crops(resize_and_crop(images))

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """ResNet-50 -> global average pool -> Linear 2048->768 on normalised (N, 3, 224, 224) pixels."""
        pooled = self.resnet(pixel_values=pixels.to(self.device, torch.float32)).pooler_output
        return self.global_embedder(pooled.flatten(1)).cpu()

    def _embed_batches(self, items: Sequence, batch_size: int, to_pixels) -> torch.Tensor:
        chunks = [torch.zeros(0, EMBED_DIM)]
        starts = range(0, len(items), batch_size)
        quiet = True if len(starts) < 2 else None  # None: tqdm shows progress only on a TTY
        for start in tqdm(starts, desc="released: images", unit="batch", disable=quiet):
            chunks.append(self.encode_pixels(to_pixels(items[start : start + batch_size])))
        return torch.cat(chunks)

    def embed_crops(self, crops: np.ndarray | torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Image embeddings (N, 768) of uint8 (N, 224, 224, 3) crops made by `resize_and_crop`."""
        return self._embed_batches(np.asarray(crops), batch_size, normalise_crops)

    def embed_images(self, images: ImageInput, batch_size: int = 64) -> torch.Tensor:
        """Image embeddings (N, 768) of frames of any size (uint8 RGB arrays or PIL images)."""
        return self._embed_batches(_as_image_list(images), batch_size, self.preprocess)

    # ---- texts ---------------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Each text separately: padding to 77, truncation; (N, 77) input_ids/attention_mask/token_type_ids.

        Warns when a text is longer than 77 word pieces, because the original silently cut it.
        """
        warn_truncated(self.tokenizer, texts, MAX_TOKENS)
        rows = [self.tokenizer(t, padding="max_length", max_length=MAX_TOKENS, truncation=True,
                               return_tensors="pt") for t in texts]  # fmt: skip
        if not rows:
            empty = torch.zeros(0, MAX_TOKENS, dtype=torch.long)
            return {"input_ids": empty, "attention_mask": empty.clone(), "token_type_ids": empty.clone()}
        return {k: torch.cat([r[k] for r in rows]) for k in ("input_ids", "attention_mask", "token_type_ids")}

    @torch.inference_mode()
    def encode_tokens(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """BERT with hidden states, then `sum_last4_pool`: (N, 768)."""
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        out = self.bert(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            token_type_ids=tokens["token_type_ids"],
            output_hidden_states=True,
        )
        sep_id = self.tokenizer.sep_token_id
        return sum_last4_pool(out.hidden_states, tokens["input_ids"], tokens["attention_mask"], sep_id).cpu()

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Text embeddings (N, 768) as the original `text_emb` (no projection, no norm)."""
        tokens = self.tokenize(texts)
        if len(tokens["input_ids"]) == 0:
            return torch.zeros(0, EMBED_DIM)
        return self.encode_tokens(tokens)

    score = staticmethod(score)


def load_released(
    path: str | Path, bert_dir: str | Path, device: str | torch.device = "cpu"
) -> ReleasedModel:
    """Build the released model from a SurgVLP / HecVL / PeskaVLP .pth and a local Bio_ClinicalBERT folder.

    The checkpoint is read with `weights_only=True` and checked key by key (surgvlp_checkpoint.py);
    `bert_dir` only needs Bio_ClinicalBERT's vocab.txt (the BERT weights are in the checkpoint).
    """
    tokenizer = load_bio_clinical_bert_tokenizer(bert_dir)
    state = read_released_checkpoint(path)
    model = ReleasedModel(tokenizer)
    model.load_released_state_dict(state)
    return model.to(device).eval()


__all__ = [
    "ReleasedModel",
    "load_bio_clinical_bert_tokenizer",
    "load_released",
    "normalise_crops",
    "resize_and_crop",
    "score",
    "sum_last4_pool",
]
