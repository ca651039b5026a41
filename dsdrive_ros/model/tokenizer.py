"""BPE tokenizer (HuggingFace `tokenizers`), saved as tokenizer.json. Torch-free: used at run time.

The tiny preset trains its own byte-level BPE on the teacher corpus; a 1b user passes their own
Llama tokenizer.json through the same class (special tokens are looked up by name).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .reasoning_format import ANSWER, ANSWER_END, THINK, THINK_END

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", THINK, THINK_END, ANSWER, ANSWER_END]
# names other tokenizers use for the same roles (Llama 3)
_ALIASES = {"pad": ["<pad>", "<|finetune_right_pad_id|>"], "bos": ["<bos>", "<|begin_of_text|>", "<s>"],
            "eos": ["<eos>", "<|end_of_text|>", "</s>"], "unk": ["<unk>"]}


class DSDriveTokenizer:
    def __init__(self, tokenizer: Tokenizer):
        self.tk = tokenizer
        self.ids: dict[str, int] = {}
        for role, names in _ALIASES.items():
            found = [self.tk.token_to_id(n) for n in names if self.tk.token_to_id(n) is not None]
            if found:
                self.ids[role] = found[0]
        missing = {"pad", "bos", "eos"} - set(self.ids)
        if missing:
            raise ValueError(f"tokenizer has no special token for {sorted(missing)}")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> "DSDriveTokenizer":
        tk = Tokenizer(models.BPE(unk_token="<unk>"))
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tk.train_from_iterator(texts, trainer)
        return cls(tk)

    @classmethod
    def load(cls, path: str | Path) -> "DSDriveTokenizer":
        return cls(Tokenizer.from_file(str(path)))

    def save(self, path: str | Path) -> None:
        self.tk.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.tk.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tk.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tk.decode(list(ids), skip_special_tokens=False).replace("<pad>", "")

    def encode_instruction(self, text: str, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """-> ids (1, max_len) int64 padded, mask (1, max_len) bool. Over-long text is truncated."""
        ids = self.encode(text)[:max_len]
        out = np.full((1, max_len), self.ids["pad"], dtype=np.int64)
        out[0, :len(ids)] = ids
        mask = np.zeros((1, max_len), dtype=bool)
        mask[0, :len(ids)] = True
        return out, mask

    def encode_reasoning(self, text: str, max_len: int) -> list[int]:
        """Training target: bos + text + eos, truncated to max_len (eos kept)."""
        ids = self.encode(text)[: max_len - 2]
        return [self.ids["bos"], *ids, self.ids["eos"]]
