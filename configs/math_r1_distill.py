r"""MATH with DeepSeek-R1-Distill-Qwen-1.5B: DLER truncation (or TLTS) shortens its long reasoning.

What to put where (lenrl never downloads anything at run time):
  config.model.path  a local Hugging Face checkpoint directory: config.json, *.safetensors,
                     tokenizer.json + tokenizer_config.json (with the chat template). E.g. on a
                     machine with internet: `huggingface-cli download
                     deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --local-dir /data/r1-distill-1.5b`,
                     then copy the directory over.
  config.data.path   MATH-style problems as JSON lines, one file per split: '{split}' in the path
                     becomes "train" and "eval", e.g. /data/math/{split}.jsonl holding train.jsonl
                     (e.g. the MATH train set or DeepScaleR's problems) and eval.jsonl (e.g.
                     MATH-500), each line {"problem": ..., "answer": ...}. The answer may be the
                     bare final answer or a solution with a \boxed{} (its last box is the gold),
                     so raw hendrycks MATH works with config.data.answer_field="solution". Add
                     config.data.difficulty_field="level" if the rows have MATH's "Level N".
                     Parquet works too: config.data.kind="parquet" and .parquet files.
Until both exist the run stops before any work with a FileNotFoundError naming the key.

Command (one 8-GPU host; fsdp shards parameters, optimizer state and the batch over all devices):
  python -m lenrl.launch --config=configs/math_r1_distill.py --workdir=runs/math_dler \
    --config.model.path=/data/r1-distill-1.5b --config.data.path='/data/math/{split}.jsonl'
Variant `--config=configs/math_r1_distill.py:tlts` uses Train Long, Think Short instead: the
budget decays from 8192 to 4096 tokens and correct answers earn a bonus for unused budget.
Runtime: not measured here; budget on the order of a day on 8 H100/H200 for the 400 steps
(up to 2M sampled tokens per step at P=32, G=8, 8k-token budget).
Expected (DLER paper, arXiv 2510.15110, for this model): mean response length on MATH-500 falls
from roughly 5k tokens to under 2k while accuracy stays within about a point of the start
(~83%); TLTS shortens less aggressively. Compare eval_before.json and eval_after.json /
summary.json in the workdir.
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


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "", "dler", "tlts"):
        raise ValueError(
            f"configs/math_r1_distill.py takes no argument, 'dler' or 'tlts', got {arg!r}"
        )
    c = copy.deepcopy(_load_default().get_config())

    # The architecture fields of default.py (hidden_size, ...) are unused: config.json decides.
    c.model.path = "/path/to/DeepSeek-R1-Distill-Qwen-1.5B"  # PLACEHOLDER: local HF checkpoint
    c.model.tokenizer = ""  # "" = the checkpoint's own tokenizer and chat template
    c.model.param_dtype = "float32"  # master weights and optimizer state in f32
    c.model.dtype = "bfloat16"  # compute dtype on accelerators
    c.model.remat = "full"  # recompute activations in the backward pass (8k-token sequences)

    c.data.kind = "jsonl"  # "jsonl" | "parquet" | "hf_disk" | "tfds"
    c.data.path = "/path/to/math/{split}.jsonl"  # PLACEHOLDER: {split} = "train" | "eval"
    c.data.question_field = "problem"  # MATH's problem field
    c.data.answer_field = "answer"  # final answer, or a solution whose last \boxed{} is the gold
    c.data.solution_field = ""  # no warm start
    c.data.difficulty_field = ""  # "level" for MATH's "Level 1".."Level 5" (accuracy by level)
    c.data.verifier = "math"  # last \boxed{} of the answer vs the gold, up to equivalence
    c.data.think_in_prompt = True  # R1-distill's chat template opens <think> itself
    c.data.num_eval = 500  # e.g. all of MATH-500
    c.data.max_prompt_len = 768  # chat template + problem; a longer prompt is an error

    c.sft.steps = 0  # no supervised warm start

    c.rl.steps = 400  # RL steps
    c.rl.prompts_per_step = 32  # P
    c.rl.group_size = 8  # G samples per prompt
    c.rl.epochs = 1  # one pass over each rollout batch
    c.rl.num_minibatches = 4  # optimizer steps per rollout batch (64 samples each)
    c.rl.num_microbatches = 4  # gradient accumulation per optimizer step (16 samples each)
    c.rl.learning_rate = 1e-6  # DLER's rate for this model
    c.rl.warmup_steps = 10  # learning-rate warm-up (optimizer steps)
    c.rl.weight_decay = 0.01  # AdamW decay on matrices
    c.rl.grad_clip = 1.0  # global-norm clip
    c.rl.objective = "pg"  # clipped policy-gradient surrogate
    c.rl.loss_preset = "dapo"  # clip-higher, no KL, token-mean
    config_files.unset_all(c.rl.loss)  # DLER's loss, written out:
    c.rl.loss.eps_low = 0.2  # lower clip 1 - 0.2
    c.rl.loss.eps_high = 0.28  # clip-higher: upper clip 1 + 0.28
    c.rl.loss.beta = 0.0  # no KL to the reference
    c.rl.loss.loss_agg = "token_mean"  # every valid token of the batch weighs the same
    c.rl.advantage = "batch_whiten"  # DLER: group-centred, batch-whitened over tokens
    config_files.unset_all(c.rl.advantage_hparams).boost = 0.1  # + 0.1 * correct
    c.rl.dynamic_sampling = True  # drop all-equal groups and draw more prompts (DLER, DAPO)
    c.rl.max_draws = 3  # prompt batches drawn per step at most

    c.penalty.name = "truncation"  # r = correct, kappa * correct if truncated (DLER)
    c.penalty.hparams = ml_collections.ConfigDict({"kappa": 0.1})  # DLER's factor

    c.budget.schedule = "constant"  # the same truncation length every step
    c.budget.hparams = ml_collections.ConfigDict({"value": 4000})  # DLER's truncation length
    c.budget.bucket = 0  # budgets are already round numbers
    c.budget.max_new_tokens = 8192  # sampler width: the largest budget (training and eval)

    c.sampling.temperature = 0.6  # DeepSeek's recommended temperature for R1-distill models
    c.sampling.top_p = 0.95  # DeepSeek's recommended nucleus mass
    c.sampling.top_k = 0  # no top-k
    c.sampling.num_slots = 64  # decode rows on device, refilled as sequences finish (long tails)

    c.eval.every = 50  # RL steps between held-out evaluations
    c.eval.greedy = False  # sample at the temperature above (R1-distill loops when greedy)
    c.eval.budget = 8192  # max_new_tokens at evaluation: lengths are measured, not capped
    c.eval.num_slots = 128  # stream the eval set through 128 decode rows (bounds the KV cache)
    c.eval.sweep = (1024, 2048, 4096, 8192)  # budgets of the accuracy-vs-budget curve

    c.checkpoint.every = 25  # steps between checkpoints (steps are long)
    c.checkpoint.keep = 2  # last checkpoints kept (plus the best by accuracy per token)
    c.checkpoint.export = True  # export the final policy as a Hugging Face directory

    c.progress = True  # show a progress bar

    if arg == "tlts":  # Train Long, Think Short (arXiv 2508.08940) on the base GRPO recipe
        c.penalty.name = "tlts"  # w_c * correct + w_len * correct * unused budget + w_fmt * fmt
        c.penalty.hparams = ml_collections.ConfigDict(
            # w_fmt = 0: the R1-distill template opens <think> in the prompt, so lenrl's format
            # check (which wants the completion to open it) would score every sample 0.
            {"w_c": 1.0, "w_len": 0.5, "w_fmt": 0.0}
        )
        c.budget.schedule = "tlts"  # B(t) = max(B_min, B0 * gamma ** floor(t / T))
        c.budget.hparams = ml_collections.ConfigDict(
            {"b0": 8192, "gamma": 0.9, "every": 50, "b_min": 4096, "mode": "exponential"}
        )  # 8192 -> 4096 over ~350 steps
        c.rl.advantage = "grpo"  # (r - mean_g r) / (std_g r + eps)
        config_files.unset_all(c.rl.advantage_hparams)  # grpo's defaults
        c.rl.dynamic_sampling = False  # keep every group
    return c
