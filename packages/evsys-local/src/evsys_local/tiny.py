"""Tiny offline causal LMs: a random-initialised Llama with a byte-level BPE tokenizer trained here.

Nothing is downloaded: configs dry-run on CPU and tests train real models in seconds. The same
arguments give the same bytes every time (seeded init, deterministic tokenizer training).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from evsys_local._env import require_stack

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML; the assistant turn is wrapped in generation markers so SFT can train on assistant tokens only.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "of",
    "to",
    "and",
    "in",
    "on",
    "for",
    "with",
    "what",
    "how",
    "many",
    "plus",
    "minus",
    "times",
    "equals",
    "answer",
    "question",
    "number",
    "sum",
    "result",
    "add",
    "subtract",
    "reverse",
    "string",
    "letter",
    "word",
    "you",
    "assistant",
    "user",
    "system",
    "please",
    "give",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "zero",
    "yes",
    "no",
    "true",
    "false",
    "think",
    "step",
    "final",
]


def synthetic_corpus(n_lines: int = 2000, seed: int = 0) -> Iterator[str]:
    """Deterministic sentences mixing words, numbers and arithmetic: what the tokenizer is trained on."""
    rng = random.Random(seed)
    for _ in range(n_lines):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9)))
        yield f"{words.capitalize()}? {a}+{b}={a + b}. {a} plus {b} is {a + b}; {a}-{b}={a - b}."


def make_tiny_model(
    path: str | Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    vocab_size: int = 512,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int | None = None,
    max_positions: int = 512,
    vocab_from: str | Path | None = None,
    seed: int = 0,
) -> Path:
    """Build and save a tiny Llama causal LM and its tokenizer under ``path``; return the absolute path.

    ``vocab_from`` is a text file the tokenizer is trained on (default: a synthetic corpus). Digits are
    split one per token, as in Llama's tokenizer, so arithmetic tasks are learnable.
    """
    require_stack()
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(path).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if vocab_from is not None:
        lines: list[str] = Path(vocab_from).read_text(encoding="utf-8").splitlines()
    else:
        lines = list(synthetic_corpus(seed=seed))

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = max_positions

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
