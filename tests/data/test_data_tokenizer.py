"""The synthetic task's tokenizer (lenrl.data.tokenizer)."""

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from lenrl.data.synthetic import synthetic_example
from lenrl.data.tokenizer import (
    CHAT_TEMPLATE,
    build_synthetic_tokenizer,
    save_synthetic_tokenizer,
    synthetic_vocab,
)


@pytest.fixture(scope="module")
def tok():
    return build_synthetic_tokenizer()


def _chat(prompt, completion=None):
    messages = [{"role": "user", "content": prompt}]
    if completion is not None:
        messages.append({"role": "assistant", "content": completion})
    return messages


def test_vocab_is_small_and_special_tokens_are_set(tok):
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert len(tok) == len(synthetic_vocab()) < 64
    assert tok.pad_token_id == 0
    assert tok.convert_ids_to_tokens([tok.bos_token_id, tok.eos_token_id]) == ["<bos>", "<eos>"]
    assert tok.padding_side == "left"
    assert sorted(synthetic_vocab().values()) == list(range(len(tok)))


def test_every_task_token_is_known_and_round_trips(tok):
    for i in range(300):
        ex = synthetic_example(0, i)
        for text in (ex.prompt, ex.verbose, ex.minimal):
            ids = tok(text)["input_ids"]
            assert tok.unk_token_id not in ids
            assert tok.decode(ids) == text
    ids = tok(synthetic_example(0, 0).verbose)["input_ids"]
    assert len(ids) == len(synthetic_example(0, 0).verbose.split())  # one token per word


def test_think_tags_are_single_tokens_kept_by_skip_special(tok):
    ids = tok("<think> 1 + 2 = 3 </think> answer 3")["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[0] == "<think>"
    text = tok.decode(ids + [tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True)
    assert text == "<think> 1 + 2 = 3 </think> answer 3"


def test_length_method_prompts_tokenize(tok):
    for text in [
        "Think for maximum 120 tokens.",
        "Think for 40 tokens.",
        "I will answer within 64 tokens.",
    ]:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(tok("3+4=7")["input_ids"]) == ["3", "+", "4", "=", "7"]


def test_chat_template(tok):
    ex = synthetic_example(0, 3)
    text = tok.apply_chat_template(_chat(ex.prompt, ex.verbose), tokenize=False)
    assert text == f"<bos><user> {ex.prompt} <assistant> {ex.verbose} <eos>"
    prompt_ids = tok.apply_chat_template(_chat(ex.prompt), add_generation_prompt=True)["input_ids"]
    full_ids = tok.apply_chat_template(_chat(ex.prompt, ex.verbose))["input_ids"]
    completion_ids = tok(ex.verbose)["input_ids"]
    assert prompt_ids[0] == tok.bos_token_id
    assert full_ids == prompt_ids + completion_ids + [tok.eos_token_id]  # prompt is a prefix
    with pytest.raises(Exception, match="unknown role"):
        tok.apply_chat_template([{"role": "robot", "content": "1"}], tokenize=False)


def test_save_and_load_with_auto_tokenizer(tmp_path, tok):
    path = save_synthetic_tokenizer(tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(str(path))
    assert loaded.chat_template == CHAT_TEMPLATE
    assert loaded.get_vocab() == tok.get_vocab()
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id", "padding_side"):
        assert getattr(loaded, name) == getattr(tok, name)
    ex = synthetic_example(1, 2)
    assert loaded(ex.verbose)["input_ids"] == tok(ex.verbose)["input_ids"]
    chat = _chat(ex.prompt, ex.verbose)
    assert loaded.apply_chat_template(chat, tokenize=False) == tok.apply_chat_template(
        chat, tokenize=False
    )
    batch = loaded([ex.prompt, ex.verbose], padding=True)["input_ids"]
    assert batch[0][0] == loaded.pad_token_id  # left padding survives the round trip
