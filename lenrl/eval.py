"""Command line: evaluate a checkpoint directory on a config's held-out data.

  python -m lenrl.eval --config=configs/default.py --model=runs/default/export \
      [--samples=4] [--budgets=32,64,160] [--thinking] [--out=DIR]

Writes ``eval.json`` (accuracy, lengths, accuracy per 1,000 tokens, pass@k, by difficulty, the
budget sweep) and ``budget_curve.png`` into ``--out`` (default: the model directory).
"""

from __future__ import annotations

import json
import os

import jax
from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config whose data section is used.")
_MODEL = flags.DEFINE_string("model", None, "Hugging Face checkpoint directory to evaluate.")
_SAMPLES = flags.DEFINE_integer("samples", 1, "Samples per problem (pass@k for k <= samples).")
_BUDGETS = flags.DEFINE_list("budgets", [], "Token budgets of the accuracy-vs-budget sweep.")
_THINKING = flags.DEFINE_bool(
    "thinking", False, "Sweep thinking budgets (budget forcing) instead of hard caps."
)
_OUT = flags.DEFINE_string("out", None, "Output directory (default: --model).")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from flax import nnx

    from lenrl import models, plots
    from lenrl.evaluation import budget_sweep, evaluate
    from lenrl.sampling import SamplingConfig, ThinkingConfig, make_sampler
    from lenrl.train import setup

    config = _CONFIG.value
    out_dir = _OUT.value or _MODEL.value
    tokenizer = models.load_tokenizer(_MODEL.value)
    model = models.from_pretrained(_MODEL.value, mesh=setup.build_mesh(config))
    source = setup.build_source(config, "eval")
    examples = [source[i] for i in range(min(config.data.num_eval, len(source)))]
    cfg = setup.sampling_config(
        config, tokenizer, greedy=_SAMPLES.value == 1, num_prompts=len(examples)
    )
    if _THINKING.value:
        end = tokenizer.convert_tokens_to_ids("</think>")
        cfg = SamplingConfig(
            **{
                **cfg.__dict__,
                "thinking": ThinkingConfig(
                    end_token_ids=(end,), forced_token_ids=(end,), answer_budget=16
                ),
            }
        )
    graphdef, params = nnx.split(model)
    sampler = make_sampler(graphdef, cfg, model_cfg=model.cfg)
    key = jax.random.key(config.seed)
    metrics, records = evaluate(
        sampler,
        params,
        tokenizer,
        examples,
        budget=config.eval.budget,
        verifier=config.data.verifier,
        key=key,
        num_samples=_SAMPLES.value,
        ks=tuple(k for k in (1, 2, 4, 8, 16) if k <= _SAMPLES.value),
    )
    result = {"metrics": metrics}
    budgets = [int(b) for b in _BUDGETS.value]
    if budgets:
        result["budget_sweep"] = budget_sweep(
            sampler,
            params,
            tokenizer,
            examples,
            budgets=budgets,
            verifier=config.data.verifier,
            key=key,
            thinking=_THINKING.value,
        )
        plots.budget_curve(
            {os.path.basename(os.path.normpath(_MODEL.value)): result["budget_sweep"]},
            os.path.join(out_dir, "budget_curve.png"),
        )
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump({**result, "samples": records[:50]}, f, indent=2)
    print(json.dumps(metrics))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "model"])
    app.run(main)
