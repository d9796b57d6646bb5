"""Word-level tokenizer for the synthetic task, built locally and served through transformers.

The rest of lenrl loads every tokenizer with ``AutoTokenizer.from_pretrained(dir)``; this module
builds the synthetic task's one with the HF ``tokenizers`` library (no download), wraps it in
``transformers.PreTrainedTokenizerFast`` with a chat template, and saves it, so the synthetic run
takes the same code path as a real checkpoint.

Vocabulary (``len(tokenizer) == 35``): special ``<pad>`` (id 0), ``<unk>``, ``<bos>``, ``<eos>``,
``<system>``, ``<user>``, ``<assistant>``; the non-special added tokens ``<think>`` and
``</think>`` (never split, kept by ``decode(..., skip_special_tokens=True)``); digits, ``+ - = ?
.``, the task words ``answer check ok problem`` and the words lenrl's length methods write into
prompts ("Think for maximum N tokens.", "I will answer within N tokens."). The pre-tokenizer
splits on whitespace, punctuation and single digits, so ``"3+4=7"`` and ``"100"`` tokenize too;
``decode`` joins tokens with one space, so single-spaced task text round-trips exactly.

Chat template (a BOS, then ``<role> content`` per message; an assistant turn ends with ``<eos>``):

    <bos><user> 3 + 4 = ? <assistant> <think> 3 + 4 = 7 </think> answer 7 <eos>

With ``add_generation_prompt=True`` the prompt ends with ``<assistant>``, so the tokens of a
prompt are a prefix of the tokens of the full conversation. Plain ``tokenizer(text)`` adds no
special tokens (like Qwen); the BOS comes from the chat template. Padding is on the left.
"""

from __future__ import annotations

import os
import pathlib

from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from lenrl.data.synthetic import TASK_WORDS, THINK_CLOSE, THINK_OPEN

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
ROLE_TOKENS = ("<system>", "<user>", "<assistant>")
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS) + ROLE_TOKENS
# Words the length methods write into prompts (L1: "Think for maximum N tokens.", HBPO: "I will
# answer within N tokens.").
PROMPT_WORDS = (".", "Think", "for", "maximum", "tokens", "I", "will", "within")

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + message['role'] + '; use system, user or assistant') }}"
    "{% endif %}"
    "<{{ message['role'] }}> {{ message['content'] }} "
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def synthetic_vocab() -> dict[str, int]:
    """Token -> id; specials first (``<pad>`` = 0), then ``<think>``, ``</think>``, words."""
    words = SPECIAL_TOKENS + (THINK_OPEN, THINK_CLOSE)
    words += tuple(dict.fromkeys(w for w in TASK_WORDS + PROMPT_WORDS if w not in words))
    return {w: i for i, w in enumerate(words)}


def build_synthetic_tokenizer() -> PreTrainedTokenizerFast:
    """The synthetic task's tokenizer (35 tokens), built in memory; nothing is downloaded."""
    tok = Tokenizer(models.WordLevel(synthetic_vocab(), unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(),
        ]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t in (THINK_OPEN, THINK_CLOSE)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=4096,
    )


def save_synthetic_tokenizer(directory: str | os.PathLike) -> pathlib.Path:
    """Builds the tokenizer and saves it to ``directory`` (created if needed); returns the path.

    Load it back with ``transformers.AutoTokenizer.from_pretrained(directory)``.
    """
    path = pathlib.Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    build_synthetic_tokenizer().save_pretrained(str(path))
    return path
