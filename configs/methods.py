r"""One preset per length-control method of the spec, all from the same warm start.

Command (one run per method; `NAME` is a method of `lenrl.penalties.REGISTRY`, or `drpo`):
  python -m lenrl.launch --config=configs/methods.py:NAME --workdir=runs/methods/NAME
  e.g. --config=configs/methods.py:dler   (alias of `truncation`; `grpo` is an alias of `none`)
Names: none, truncation, difficulty_aware_truncation, kimi, l1_exact, l1_max, alp, grpo_lambda,
hapo, drpo_weights, drpo, hbpo, cosine, dapo_overlong, thinkprune, tlts, siri, format_length,
adaptive_lambda; aliases dler -> truncation, grpo -> none. Anything else is a ValueError listing
these.
Runtime: about that of configs/default.py per name (measured: `dler` 3.5 minutes on 2 CPU cores,
2.5 of them the warm start; presets with dynamic sampling draw up to 3 prompt batches a step).
Each run trains the warm start (phase 1) itself, with the same seed and settings, so every name
starts from the same model and the sweep compares the RL phase only.
Expected: every method except `none` (and `format_length`, which has no ground truth) shortens
the held-out completions of the warm-started model (~43 tokens on average) towards the minimal
solutions (14-22 tokens); compare `summary.json` (length_reduction, accuracy_change) and
`budget_curve.png` across workdirs. `none` is the baseline: accuracy without length pressure.
Caveat: `hapo` and `difficulty_aware_truncation` keep per-prompt state (keyed by the prompt's
index) that only acts when a prompt comes back; an RL phase of a few hundred prompt draws over
default.py's 20,000 train problems almost never repeats one, so here they behave like `none` and
`truncation`. Give them a small prompt pool (e.g. --config.data.num_train=128, which also changes
the warm start's data) to see their effect.

Everything but the RL recipe -- model, data, warm start, sampling, evaluation, checkpoints -- is
`configs/default.py`'s (imported, not copied). Only L1 and HBPO widen the prompt
(`data.max_prompt_len`) for the length instruction they write into it; that leaves the warm
start's computation unchanged (positions follow the attention mask, padding is masked). Each
preset sets the method's reward, advantage, loss, budget schedule and dynamic sampling as the
spec's recipe says (shared/spec/length_methods.md). Methods whose paper prescribes no advantage
or loss use the shared base recipe -- the base config's group-baseline advantage (`grpo` or
`dr_grpo`) and loss preset -- so that only the length signal differs between runs.

Budget numbers are SCALED TO THE SYNTHETIC TASK: its verbose solutions are ~43 tokens on average
(p90 ~68, max ~88) and its minimal ones 14-22 tokens, where the papers' models write thousands.
For a real model scale them back up (paper values in the spec, e.g. DLER's 4000-token truncation,
ThinkPrune's 4000 -> 3000 -> 2000 rounds, HBPO's (512, 1024, 2048, 2560) subgroups, DAPO's
L_max = 20480 with L_cache = 4096); see configs/gsm8k_qwen2_5.py and configs/math_r1_distill.py
for real-checkpoint recipes. The few step counts (Kimi warm-up, ThinkPrune rounds, TLTS decay,
SIRI period) are fractions of the base config's `rl.steps`, computed when the config is built:
if you override `--config.rl.steps`, override them too.
"""

import copy
import os

import ml_collections

from lenrl import config_files


def _load_default():
    """configs/default.py as a module: every key the trainer reads."""
    return config_files.load_module(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py")
    )


# Lengths of the synthetic task, in tokens with the stop token (configs/default.py's data).
MINIMAL_MAX = 22  # the longest minimal solution (4 ops); no budget may go below it
SHORT = 40  # every minimal solution fits, and so does the restated chain (max 32)
TRUNCATE = 64  # DLER-style cap a little above the mean verbose length (~58): cuts the long tail
LONG = 128  # above every verbose solution (max 116): "no pressure" end of a schedule


# Tokens L1's "Think for maximum N tokens." (7) and HBPO's "I will answer within N tokens." (9) add
# to a prompt, rounded up.
INSTRUCTION_TOKENS = 16


def _cd(**fields) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(fields)


def _set_all(cd: ml_collections.ConfigDict, **fields) -> None:
    """Unset (None) every key of `cd`, then set `fields`: the base's keys stay overridable."""
    for key in list(cd.keys()):
        cd[key] = None
    for key, value in fields.items():
        cd[key] = value


def _advantage(c, name: str, **hparams) -> None:
    c.rl.advantage = name  # a lenrl.algorithms.ADVANTAGES estimator
    _set_all(c.rl.advantage_hparams, **hparams)  # its options; None = its default


def _base_recipe(c) -> None:
    """The recipe shared by methods whose paper prescribes no advantage/loss: GRPO-style.

    The advantage (group baseline), loss preset and loss overrides stay the base config's, tuned
    for this task (at the time of writing `dr_grpo`: without the std normalisation, a small
    length term on all-wrong groups stays small instead of becoming a full-size advantage).
    """
    c.rl.objective = "pg"  # clipped policy-gradient surrogate
    c.rl.dynamic_sampling = False  # keep every group, all-equal ones get advantage 0


def _constant_budget(c, value: int) -> None:
    c.budget.schedule = "constant"  # the same base budget every step
    c.budget.hparams = _cd(value=value)  # tokens


def _dler_recipe(c) -> None:
    """DLER's optimisation recipe (arXiv 2510.15110), everything but the penalty."""
    # REINFORCE++-baseline: group-centred, batch-whitened over tokens, + 0.1 * correct (boost).
    _advantage(c, "batch_whiten", boost=0.1)
    c.rl.loss_preset = "dapo"  # clip-higher, no KL, token-mean
    _set_all(  # written out so that base-config overrides cannot change the recipe
        c.rl.loss,
        eps_low=0.2,  # lower clip 1 - 0.2
        eps_high=0.28,  # clip-higher: upper clip 1 + 0.28
        beta=0.0,  # no KL to the reference
        loss_agg="token_mean",  # every valid token of the batch weighs the same
    )
    c.rl.dynamic_sampling = True  # drop all-equal groups and draw more prompts (DAPO)


# --------------------------------------------------------------------------------------------------
# The presets: each edits the base config in place.


def _none(c, base):
    c.penalty.name = "none"  # r = correct: the baseline for every comparison
    c.penalty.hparams = _cd()  # none


def _truncation(c, base):
    _dler_recipe(c)
    c.penalty.name = "truncation"  # r = correct, kappa * correct if truncated (DLER)
    c.penalty.hparams = _cd(kappa=0.1)  # DLER's "stop properly" factor
    _constant_budget(c, TRUNCATE)  # paper: 4000 tokens


def _difficulty_aware_truncation(c, base):
    # Per-prompt solve rates: acts only on prompts seen before (see the header's caveat).
    _dler_recipe(c)
    c.penalty.name = "difficulty_aware_truncation"  # truncation with per-prompt budgets
    c.penalty.hparams = _cd(
        delta=0.5,  # a fully solved prompt's budget shrinks by half
        rho=0.5,  # EMA rate of the per-prompt solve rate
        l_min=MINIMAL_MAX + 2,  # smallest budget (spec: L_max / 4 = 12 would cut minimal answers)
        kappa=0.1,  # factor of a truncated sample's reward
    )
    _constant_budget(c, TRUNCATE)  # L_max, the budget of an unseen prompt (paper: 4000)


def _kimi(c, base):
    c.penalty.name = "kimi"  # r = correct + w * group min/max length reward (Kimi k1.5)
    c.penalty.hparams = _cd(
        w=1.0,  # weight of the length reward
        warmup_steps=max(1, base.rl.steps // 6),  # no penalty for the first sixth of the run
    )


def _l1(name):
    def preset(c, base):
        c.penalty.name = name  # L1 / LCPO: hit the target written into the prompt
        c.penalty.hparams = _cd(
            alpha=0.01,  # per token of |target - L| (paper 3e-4 for targets ~40x longer)
            t_min=16,  # smallest target (paper 100), near the minimal solutions
            t_max=LONG,  # largest target (paper 4000), above every verbose solution
            seed=0,  # targets are a function of (seed, step, prompt index)
        )
        if name == "l1_max":
            c.penalty.hparams.delta = 0.5  # reward of a correct answer exactly at its target
        # Room for the target instruction in the prompt.
        c.data.max_prompt_len = base.data.max_prompt_len + INSTRUCTION_TOKENS

    return preset


def _alp(c, base):
    c.penalty.name = "alp"  # r = correct - beta * max(p, 1/G) * L / L_max
    beta = base.penalty.hparams.get("beta", 0.1) if base.penalty.name == "alp" else 0.1
    c.penalty.hparams = _cd(beta=beta)  # the base config's tuned ALP weight (spec default 0.1)


def _grpo_lambda(c, base):
    c.penalty.name = "grpo_lambda"  # the Kimi term on the best-solved share of groups only
    c.penalty.hparams = _cd(
        lam=0.5,  # share of the batch's groups that may get the length term
        p_min=0.5,  # ... and only if their solve rate is at least this
        w=1.0,  # weight of the length term
    )


def _hapo(c, base):
    # Per-prompt history: acts only on prompts seen before (see the header's caveat).
    c.penalty.name = "hapo"  # cosine length reward against the best correct length seen
    c.penalty.hparams = _cd(
        w=1.0,  # weight of the length reward
        mode="min",  # history h = shortest correct length so far
    )


def _drpo_weights(c, base):
    c.penalty.name = "drpo_weights"  # r = correct; the length weights live in the advantage
    c.penalty.hparams = _cd(lam=0.1)  # temperature of the positives' length weights
    _advantage(  # DRPO-style positive-only weighting for the clipped loss (lenrl)
        c,
        "positive_group",
        lam=0.1,  # the same temperature as the penalty's
        l_max=base.budget.max_new_tokens,  # L_max of the weights: the sampler width
    )


def _drpo(c, base):
    c.penalty.name = "drpo_weights"  # r = correct; the length weights live in the objective
    c.penalty.hparams = _cd(lam=0.1)  # temperature of the positives' length weights
    c.rl.objective = "drpo"  # DRPO's full objective in DisCO form (spec section 3)
    _set_all(  # lenrl.algorithms.drpo.DRPOConfig fields (the papers' defaults)
        c.rl.loss,
        tau=10.0,  # temperature of the log-mean-exp over the negatives' scores
        lam=0.1,  # the same temperature as the penalty's
        beta=1e3,  # squared-hinge coefficient of the KL trust region
        delta=1e-4,  # KL(pi_old || pi) budget of the trust region
        kl_estimator="k3",  # KL estimator of the trust region
    )
    # The length weights use L_max = budget.max_new_tokens (the trainer passes it).


def _hbpo(c, base):
    budgets = (SHORT, 2 * SHORT, 3 * SHORT, 4 * SHORT)  # paper (512, 1024, 2048, 2560)
    margin = 16  # overshoot past the largest budget that is still graded (paper 512)
    c.penalty.name = "hbpo"  # per-subgroup budgets written into the prompt
    c.penalty.hparams = _cd(
        subgroup_budgets=budgets,  # b_k of the K subgroups (G must be divisible by K)
        margin=margin,  # sampler cap = max(b_k) + margin
        beta=1.0,  # slope of the reward decay past the subgroup's budget
    )
    _advantage(c, "hbpo", num_subgroups=len(budgets))  # intra- + inter-subgroup, K subgroups
    # Room for the budget instruction in the prompt.
    c.data.max_prompt_len = base.data.max_prompt_len + INSTRUCTION_TOKENS
    # Sampler width: at least the HBPO cap (160 + 16 here).
    c.budget.max_new_tokens = max(base.budget.max_new_tokens, max(budgets) + margin)


def _cosine(c, base):
    c.penalty.name = "cosine"  # cosine of L / L_max from r0 (short) to rL (long)
    c.penalty.hparams = _cd(
        r0_c=2.0,  # correct, length 0
        rL_c=1.0,  # correct, length L_max
        r0_w=-10.0,  # wrong, length 0
        rL_w=0.0,  # wrong, length L_max
        r_exceed=-10.0,  # within `margin` of the budget
        margin=4,  # tokens (paper 16 of a multi-thousand budget)
    )


def _dapo_overlong(c, base):
    c.penalty.name = "dapo_overlong"  # linear penalty over the last l_cache tokens of L_max
    c.penalty.hparams = _cd(
        l_cache=SHORT,  # soft zone 88-128 covers the verbose tail (paper 4096)
        l_max=None,  # L_max = the sample's budget (paper 20480)
    )
    _constant_budget(c, LONG)  # L_max, hard cap (paper 20480)
    c.rl.loss_preset = "dapo"  # the rest of DAPO: clip-higher, no KL, token-mean
    _set_all(c.rl.loss)  # no overrides of the DAPO preset
    c.rl.dynamic_sampling = True  # DAPO's dynamic sampling


def _thinkprune(c, base):
    c.penalty.name = "thinkprune"  # r = correct unless truncated
    c.penalty.hparams = _cd()  # none: the limit is the base budget
    c.budget.schedule = "rounds"  # piecewise-constant limits, one per round
    c.budget.hparams = _cd(
        limits=(2 * SHORT, TRUNCATE, SHORT),  # 80 -> 64 -> 40 (paper 4000 -> 3000 -> 2000)
        steps_per_round=max(1, base.rl.steps // 3),  # three equal rounds over the run
    )


def _tlts(c, base):
    c.penalty.name = "tlts"  # correctness + unused-budget bonus + format
    c.penalty.hparams = _cd(
        w_c=1.0,  # weight of correctness
        w_len=0.5,  # weight of 1 - min(L, B) / B for correct answers
        w_fmt=0.2,  # weight of the <think>...</think> format
    )
    c.budget.schedule = "tlts"  # B(t) = max(B_min, B0 * gamma ** floor(t / T))
    c.budget.hparams = _cd(
        b0=LONG,  # start long: above every verbose solution (spec default 256)
        gamma=0.9,  # decay per period
        every=max(1, base.rl.steps // 12),  # T: about 11 decays reach B_min by the end
        b_min=SHORT,  # end short: every minimal solution fits (spec default 64)
        mode="exponential",  # the paper's stepwise decay
    )


def _siri(c, base):
    c.penalty.name = "siri"  # r = correct unless truncated
    c.penalty.hparams = _cd()  # none: the limit is the base budget
    c.budget.schedule = "siri"  # compress/expand cycles
    c.budget.hparams = _cd(
        l_low=40,  # compression limit (spec default 4096)
        l_high=2 * 40,  # expansion limit, twice the low one as in the spec (8192)
        period=max(2, base.rl.steps // 3),  # P: three cycles over the run (spec default 200)
        compress_frac=0.5,  # first half of each period compresses
        shape="stair",  # L_low while compressing, else L_high
        end_phase="low",  # the last period compresses to the end (SIRI-low)
        total_steps=base.rl.steps,  # where the last period starts
    )


def _format_length(c, base):
    c.penalty.name = "format_length"  # r = format_ok * (1 + w * (1 - L / L_max)), no labels
    c.penalty.hparams = _cd(w=0.5)  # weight of the length bonus


def _adaptive_lambda(c, base):
    c.penalty.name = "adaptive_lambda"  # r = correct - lam * L / L_max, lam follows accuracy
    c.penalty.hparams = _cd(
        # Initial penalty weight (spec default 0). With 0 it stays 0 here: under sampling the
        # batch accuracy rarely beats the first batch's, so lam never grows (= `none`).
        lam0=0.5,
        eta=0.05,  # lam += eta * (batch accuracy - reference accuracy) per step
        acc_ref=None,  # reference accuracy: the first step's
    )


PRESETS = {
    "none": _none,
    "truncation": _truncation,
    "difficulty_aware_truncation": _difficulty_aware_truncation,
    "kimi": _kimi,
    "l1_exact": _l1("l1_exact"),
    "l1_max": _l1("l1_max"),
    "alp": _alp,
    "grpo_lambda": _grpo_lambda,
    "hapo": _hapo,
    "drpo_weights": _drpo_weights,
    "drpo": _drpo,
    "hbpo": _hbpo,
    "cosine": _cosine,
    "dapo_overlong": _dapo_overlong,
    "thinkprune": _thinkprune,
    "tlts": _tlts,
    "siri": _siri,
    "format_length": _format_length,
    "adaptive_lambda": _adaptive_lambda,
}
ALIASES = {"dler": "truncation", "grpo": "none"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    name = ALIASES.get(arg, arg)
    if name not in PRESETS:
        raise ValueError(
            f"configs/methods.py takes a method name (configs/methods.py:NAME), got {arg!r}; "
            f"valid: {sorted(PRESETS)} and aliases {ALIASES}."
        )
    base = _load_default().get_config()  # read-only: the numbers presets derive from
    c = copy.deepcopy(base)
    _base_recipe(c)
    PRESETS[name](c, base)
    c.preset = name  # the preset this config was built from (aliases resolved)
    return c
