"""Build a tiny random-weight Llama model directory offline: tokenizer and config, and
random weights when asked.

Run with the engine venv's Python (it has ``tokenizers``): ``python build_tiny_model.py DIR``
for vLLM, which makes its own weights (``--load-format dummy``); ``--paced`` for a larger
one whose decode steps are slow enough to stream one by one (see PACED); ``--weights`` for
engines that load them from the directory (sageLLM, LMDeploy; needs ``torch`` and
``transformers``). The byte-level BPE tokenizer is trained on the standard library's own
sources, so nothing is downloaded. head_dim must be one of vLLM's supported sizes (32 here;
16 crashes the CPU attention kernels).
"""

import glob
import json
import os
import sys
import sysconfig

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    processors,
    trainers,
)

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def _write(out: str, name: str, doc: dict[str, object]) -> None:
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)


PACED = {
    "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 6,
    "num_attention_heads": 24, "num_key_value_heads": 24,
}  # fmt: skip
"""``--paced``: a decode step of ~15 ms on two CPU cores instead of ~2 ms. vLLM's API
server needs about a millisecond per streamed chunk; on a shared two-core machine it falls
behind steps that short and sends them in bursts, so what a client receives no longer
paces what the engine produced. Tests that compare the client's timing with vLLM's own
engine-side metrics use this size."""


THINK = ["<think>", "</think>"]
"""``--reasoning``: the tags of DeepSeek R1's reasoning, as tokens of their own, so vLLM's
``deepseek_r1`` reasoning parser can split a reply into reasoning and answer."""


def build(out: str, paced: bool = False, reasoning: bool = False) -> None:
    os.makedirs(out, exist_ok=True)
    sources = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=8000,
        special_tokens=["<s>", "</s>", *(THINK if reasoning else [])],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train(sources, trainer)
    tok.save(os.path.join(out, "tokenizer.json"))
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    _write(out, "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "</s>",
        "model_max_length": 512,
        "chat_template": CHAT_TEMPLATE,
    })  # fmt: skip
    # A pad token: sageLLM's engine pads a batch of prompts, and without one every request
    # of a batch fails (its gateway then answers an empty stream that ends with "stop").
    special: dict[str, object] = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>"}
    _write(out, "special_tokens_map.json", special)
    _write(out, "config.json", {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 32,
        "vocab_size": tok.get_vocab_size(), "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "torch_dtype": "float32",
        "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": eos,
        **(PACED if paced else {}),
    })  # fmt: skip
    _write(out, "generation_config.json", {"bos_token_id": bos, "eos_token_id": eos})


def write_weights(out: str) -> None:
    """Seeded random weights as model.safetensors, keeping this builder's generation config."""
    import torch  # type: ignore[import-not-found]
    import transformers  # type: ignore[import-not-found]

    generation = os.path.join(out, "generation_config.json")
    with open(generation, encoding="utf-8") as f:
        kept = f.read()
    torch.manual_seed(0)
    config = transformers.LlamaConfig.from_pretrained(out)
    transformers.LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    with open(generation, "w", encoding="utf-8") as f:
        f.write(kept)


if __name__ == "__main__":
    build(sys.argv[1], paced="--paced" in sys.argv[2:], reasoning="--reasoning" in sys.argv[2:])
    if "--weights" in sys.argv[2:]:
        write_weights(sys.argv[1])
