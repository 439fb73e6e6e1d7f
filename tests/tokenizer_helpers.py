"""BERT's uncased tokenization written out literally, to check token ids against each authors' rule.

The authors' code cannot run here (the `surgclip` package's tokenizer class fails to import under
transformers 5, SurgVLP and SurgLIME download their tokenizers), so the tests state the rule over a
vocab.txt instead: BERT's basic tokenization, as the original `BasicTokenizer` (copied into the `surgclip`
package, reproduced by the fast tokenizers SurgVLP and SurgLIME load) does it with lower-casing on:
- drop NUL, U+FFFD and control characters (category C*, but tab, newline and carriage return), map
  whitespace (space, tab, newline, carriage return, category Zs) to a space;
- put spaces around CJK ideographs; split on whitespace;
- lower-case each word, strip its accents (NFD, drop category Mn) and split off every punctuation
  character (ASCII non-alphanumeric symbols and category P*);
then greedy longest-match-first WordPiece with `##` continuations, a word of more than 100 characters, or
one the vocabulary cannot cover, becoming [UNK].
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import torch
from video_released_helpers import write_vocab

CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
       (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))  # fmt: skip
MAX_WORD_CHARS = 100
# a vocabulary for tokenizer tests: accented words arrive without accents, CJK ideographs one by one
WORDS = ["the", "gall", "##bladder", "##s", "is", "cut", "clip", "##ping", "calot", "triangle", "cystic",
         "duct", "and", "artery", "dissection", "preparation", "phase", "liver", "bed", "of", "cafe", "naive",
         "resume", "胆", "囊", ".", ",", "!", "(", ")", "-", "'", ":", "&", "e", "##e"]  # fmt: skip
TEXTS = [
    "Calot triangle dissection",
    "Préparation du CAFÉ — naïve résumé",  # accents, also on capitals; "du" and "—" are not in the vocab
    "胆囊切除",  # CJK: one ideograph per word; 切 and 除 are not in the vocab
    "Clipping (of) the cystic-duct, artery & bed!!",  # punctuation split off, each mark its own word
    "GALLBLADDERS\tand\u00a0LIVER\nbed cut\x07clip",  # tab, no-break space, newline; a control character
    "",
    "a" * 101,  # longer than WordPiece's 100 characters: [UNK]
]


def write_tokenizer_vocab(folder: Path, size: int) -> Path:
    """A vocab.txt of exactly `size` entries: BERT's special tokens at their usual ids, WORDS, fillers."""
    return write_vocab(folder, size, WORDS)


def read_vocab(folder: Path) -> dict[str, int]:
    """vocab.txt as token -> line number (a repeated token keeps its last line)."""
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    return {token: index for index, token in enumerate(lines)}


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or (
        unicodedata.category(ch).startswith("P"))  # fmt: skip


def _cleaned(text: str) -> str:
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ord(ch) in (0, 0xFFFD) or (cat.startswith("C") and ch not in "\t\n\r"):
            continue
        if ch in " \t\n\r" or cat == "Zs":
            out.append(" ")
        elif any(lo <= ord(ch) <= hi for lo, hi in CJK):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return "".join(out)


def basic_words(text: str) -> list[str]:
    """The words of `text` after basic tokenization with lower-casing (see the module docstring)."""
    words: list[str] = []
    for word in _cleaned(text).split():
        nfd = unicodedata.normalize("NFD", word.lower())
        plain = "".join(c for c in nfd if unicodedata.category(c) != "Mn")
        current = ""
        for ch in plain:
            if _is_punctuation(ch):
                words += [current, ch] if current else [ch]
                current = ""
            else:
                current += ch
        if current:
            words.append(current)
    return words


def word_pieces(word: str, vocab: dict[str, int]) -> list[str]:
    """Greedy longest-match-first WordPiece of one word; [UNK] for the whole word if it cannot be covered."""
    if len(word) > MAX_WORD_CHARS:
        return ["[UNK]"]
    pieces: list[str] = []
    start = 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:
            return ["[UNK]"]
    return pieces


def piece_ids(text: str, vocab: dict[str, int]) -> list[int]:
    """The ids of `text`'s word pieces, no special tokens."""
    return [vocab[piece] for word in basic_words(text) for piece in word_pieces(word, vocab)]


def surgclip_rule(texts: list[str], vocab: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The `surgclip` package's `tokenize` -> (input_ids, attention_mask), both (N, 77).

    Its own BertTokenizer's `build_inputs_with_special_tokens` writes [CLS] + pieces and no [SEP], so its
    truncation at 77 keeps 76 pieces; padding="max_length" appends [PAD] (0), masked out.
    """
    ids = torch.zeros(len(texts), 77, dtype=torch.long)
    mask = torch.zeros(len(texts), 77, dtype=torch.long)
    for row, text in enumerate(texts):
        kept = [vocab["[CLS]"], *piece_ids(text, vocab)[:76]]
        ids[row, : len(kept)] = torch.tensor(kept)
        mask[row, : len(kept)] = 1
    return ids, mask
