"""Format reward and answer region (lenrl.rewards.format)."""

import pytest

from lenrl.rewards.format import answer_region, format_reward


@pytest.mark.parametrize(
    "text,reward",
    [
        ("<think> 1 + 2 = 3 </think> answer 3", 1.0),
        ("  <think>\nreasoning\n</think>\n\\boxed{3}", 1.0),
        ("<think></think> 3", 1.0),  # empty thinking is a valid format
        ("<think> x </think> answer 3 <eos> <pad> <pad>", 1.0),  # trailing specials ignored
        ("<think> x </think> answer 3<|endoftext|>", 1.0),
        ("<think> x </think>", 0.0),  # no answer
        ("<think> x </think>   <eos>", 0.0),  # only specials after it
        ("<think> x", 0.0),  # never closed
        ("x </think> 3", 0.0),  # never opened
        ("answer 3", 0.0),  # no think block
        ("3 <think> x </think> 3", 0.0),  # text before the block
        ("<think> a </think> <think> b </think> 3", 0.0),  # two blocks
        ("<think> a <think> b </think> 3", 0.0),  # nested open
        ("<think> a </think> b </think> 3", 0.0),  # two closes
        ("", 0.0),
    ],
)
def test_format_reward(text, reward):
    assert format_reward(text) == reward


@pytest.mark.parametrize(
    "text,reward",
    [
        ("reasoning </think> answer 3", 1.0),
        ("</think> 3", 1.0),
        ("<think> reasoning </think> 3", 0.0),  # the prompt already opened the block
        ("reasoning </think>", 0.0),
        ("reasoning", 0.0),
    ],
)
def test_format_reward_think_in_prompt(text, reward):
    assert format_reward(text, think_in_prompt=True) == reward


def test_answer_region():
    assert answer_region("<think> a </think> b </think> c <eos>") == " c"
    assert answer_region("plain answer 5") == "plain answer 5"
    assert answer_region("<think> still thinking 5") is None
