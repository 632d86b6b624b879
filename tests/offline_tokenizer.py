"""A real byte-level BPE tokenizer trained offline in the test run (no hub, no network),
for tests that need exact token counts."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

__all__ = ["build_metaspace_tokenizer", "build_tokenizer"]

_TRAINING_FILES = ("textwrap.py", "random.py", "argparse.py", "string.py")


def build_tokenizer(directory: Path, *, split_words: bool = True) -> Path:
    """Train a 2000-token byte-level BPE with a BOS template and save its tokenizer.json.

    ``split_words=False`` drops the pre-tokenizer's word splitting, so merges cross spaces
    (tokens such as ``"the "``): word costs then no longer add up."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False, use_regex=split_words
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=["<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    # English docstrings and comments, and code
    texts = ((stdlib / name).read_text(encoding="utf-8") for name in _TRAINING_FILES)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", bos)]
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def build_metaspace_tokenizer() -> Tokenizer:
    """A 2000-token BPE that writes spaces as SentencePiece does (``"▁the"``, a ``▁`` put
    before the text's first word too), trained on the same text."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=2000, show_progress=False)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = ((stdlib / name).read_text(encoding="utf-8") for name in _TRAINING_FILES)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer
