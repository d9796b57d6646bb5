"""The RL update's completion widths: few distinct values (each one compiles), never too narrow."""

from types import SimpleNamespace

import pytest

from lenrl.train.rollout import Rollout


@pytest.mark.parametrize("full", [1, 31, 32, 100, 160, 1024, 1000, 4096, 32768])
@pytest.mark.parametrize("max_widths", [1, 3, 8])
def test_widths_are_few_and_hold_the_longest(full, max_widths):
    r = SimpleNamespace(width_bucket=32, max_widths=max_widths)
    step = Rollout.width_step(r, full)
    assert step % 32 == 0
    widths = {}
    for longest in range(1, full + 1):
        width = min(full, -(-longest // step) * step)  # as Rollout._update_batch
        assert longest <= width < longest + step  # holds it, pads less than one step
        widths[width] = longest
    assert len(widths) <= max(max_widths, 1)


def test_short_budgets_keep_the_fine_bucket():
    # the default config's 160-token sampler: multiples of 32, as before (5 widths)
    assert Rollout.width_step(SimpleNamespace(width_bucket=32, max_widths=8), 160) == 32
    # a 4096-token budget: 8 widths of 512, not 128 widths of 32 (128 compiles)
    assert Rollout.width_step(SimpleNamespace(width_bucket=32, max_widths=8), 4096) == 512
