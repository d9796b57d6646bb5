"""`lenrl.penalties.get` and `REGISTRY`: names, hyperparameter checks, errors."""

import pytest

from lenrl import penalties

SPEC_NAMES = {
    "none",
    "truncation",
    "difficulty_aware_truncation",
    "kimi",
    "l1_exact",
    "l1_max",
    "alp",
    "grpo_lambda",
    "hapo",
    "drpo_weights",
    "hbpo",
    "cosine",
    "dapo_overlong",
    "thinkprune",
    "tlts",
    "siri",
    "format_length",
    "adaptive_lambda",
}


def test_registry_holds_every_spec_name():
    assert set(penalties.REGISTRY) == SPEC_NAMES
    for name in SPEC_NAMES:
        method = penalties.get(name, num_samples=8)
        assert isinstance(method, penalties.LengthMethod)
        assert method.name == name and method.num_samples == 8


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown length method 'kimmi'.*'kimi'"):
        penalties.get("kimmi", num_samples=8)


def test_unknown_hyperparameter_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"\['betta'\].*'alp'.*'beta'"):
        penalties.get("alp", num_samples=8, betta=0.1)
    assert penalties.hparam_names("alp") == ["num_samples", "beta", "format_weight"]


def test_num_samples_is_required_and_checked():
    with pytest.raises(ValueError, match="needs num_samples"):
        penalties.get("none")
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="num_samples"):
            penalties.get("none", num_samples=bad)


@pytest.mark.parametrize(
    ("name", "hparams", "match"),
    [
        ("truncation", dict(kappa=-0.1), "kappa"),
        ("kimi", dict(w=-1.0), "w must be"),
        ("kimi", dict(warmup_steps=-5), "warmup_steps"),
        ("kimi", dict(warmup_steps=2.5), "warmup_steps must be an integer"),
        ("l1_exact", dict(t_min=-10), "t_min"),
        ("l1_max", dict(t_max=10), "t_max"),
        ("alp", dict(beta=float("nan")), "beta"),
        ("grpo_lambda", dict(lam=0.0), "lam"),
        ("hapo", dict(mode="median"), "mode"),
        ("drpo_weights", dict(lam=-0.1), "lam"),
        ("hbpo", dict(subgroup_budgets=(100, 200, 300)), "divisible"),
        ("cosine", dict(margin=-16), "margin"),
        ("dapo_overlong", dict(l_cache=-1), "l_cache"),
        ("tlts", dict(w_fmt="0.2"), "w_fmt"),
        ("format_length", dict(w=-0.5), "w must be"),
        ("adaptive_lambda", dict(eta=-0.05), "eta"),
        ("difficulty_aware_truncation", dict(l_min=-1), "l_min"),
        ("none", dict(format_weight="a lot"), "format_weight"),
    ],
)
def test_bad_hyperparameters_raise_at_construction(name, hparams, match):
    with pytest.raises(ValueError, match=match):
        penalties.get(name, num_samples=8, **hparams)


def test_schedules_are_accepted_where_typed():
    penalties.get("kimi", num_samples=8, w=lambda step: 1.0)
    penalties.get("none", num_samples=8, format_weight=lambda step: 0.1)
    with pytest.raises(ValueError, match="margin"):
        penalties.get("cosine", num_samples=8, margin=lambda step: 16)
