r"""GSM8K with a Qwen2.5-Instruct checkpoint: GRPO + ALP (or DLER) makes its answers shorter.

What to put where (lenrl never downloads anything at run time):
  config.model.path  a local Hugging Face checkpoint directory: config.json, *.safetensors,
                     tokenizer.json + tokenizer_config.json (with the chat template). E.g. on a
                     machine with internet: `huggingface-cli download Qwen/Qwen2.5-1.5B-Instruct
                     --local-dir /data/Qwen2.5-1.5B-Instruct`, then copy the directory over.
  config.data.path   GSM8K as JSON lines, one file per split: '{split}' in the path becomes
                     "train" and "eval", e.g. /data/gsm8k/{split}.jsonl holding train.jsonl (the
                     7,473 train problems) and eval.jsonl (the 1,319 test problems), each line
                     {"question": ..., "answer": "... #### 72"} as in the "main" GSM8K config.
                     Parquet works too: set config.data.kind="parquet" and use .parquet files.
Until both exist the run stops before any work with a FileNotFoundError naming the key.

Command:
  python -m lenrl.launch --config=configs/gsm8k_qwen2_5.py --workdir=runs/gsm8k_alp \
    --config.model.path=/data/Qwen2.5-1.5B-Instruct --config.data.path='/data/gsm8k/{split}.jsonl'
Variant `--config=configs/gsm8k_qwen2_5.py:dler` swaps ALP for DLER (truncation at 512 tokens,
batch-whitened advantage with +0.1 boost, clip-higher, token-mean, dynamic sampling).
Warm start: none (sft.steps=0; the Instruct model already answers in GSM8K's format). To add one,
set sft.steps > 0 and data.solution_field="answer" (GSM8K's answer field is a worked solution).
Runtime: not measured here; budget roughly 2-4 hours on one H100/H200 for the 200 steps (about
500k sampled tokens per step at P=64, G=8), less on a multi-GPU host (fsdp over all devices).
Expected (from the ALP / DLER papers' trends, not measured here): the mean response length on
the held-out set drops by roughly 30-50% from ~300 tokens, with accuracy within about 2 points
of the starting checkpoint (~70% for 1.5B-Instruct). Compare eval_before.json and
eval_after.json / summary.json in the workdir.
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
    if arg not in (None, "", "alp", "dler"):
        raise ValueError(
            f"configs/gsm8k_qwen2_5.py takes no argument, 'alp' or 'dler', got {arg!r}"
        )
    c = copy.deepcopy(_load_default().get_config())

    # The architecture fields of default.py (hidden_size, ...) are unused: config.json decides.
    c.model.path = "/path/to/Qwen2.5-1.5B-Instruct"  # PLACEHOLDER: local HF checkpoint directory
    c.model.tokenizer = ""  # "" = the checkpoint's own tokenizer and chat template
    c.model.param_dtype = "float32"  # master weights and optimizer state in f32
    c.model.dtype = "bfloat16"  # compute dtype on accelerators
    c.model.remat = "full"  # recompute activations in the backward pass (long sequences)

    c.data.kind = "jsonl"  # "jsonl" | "parquet" | "hf_disk" | "tfds"
    c.data.path = "/path/to/gsm8k/{split}.jsonl"  # PLACEHOLDER: {split} = "train" | "eval"
    c.data.question_field = "question"  # GSM8K's problem field
    c.data.answer_field = "answer"  # GSM8K's "... #### <number>" field
    c.data.solution_field = ""  # no warm start (set "answer" to use GSM8K's worked solutions)
    c.data.difficulty_field = ""  # GSM8K has no difficulty level
    c.data.verifier = "gsm8k"  # compares the last number of the answer with the gold after ####
    c.data.num_eval = 1319  # evaluate on the whole GSM8K test split (the eval file)
    c.data.max_prompt_len = 384  # chat template + question; a longer prompt is an error

    c.sft.steps = 0  # no supervised warm start

    c.rl.steps = 200  # about 1.7 epochs of the 7,473 train problems
    c.rl.prompts_per_step = 64  # P
    c.rl.group_size = 8  # G samples per prompt
    c.rl.epochs = 1  # one pass over each rollout batch
    c.rl.num_minibatches = 4  # optimizer steps per rollout batch (128 samples each)
    c.rl.num_microbatches = 2  # gradient accumulation per optimizer step (64 samples each)
    c.rl.learning_rate = 1e-6  # the usual RL fine-tuning rate for 1.5B models
    c.rl.warmup_steps = 10  # learning-rate warm-up (optimizer steps)
    c.rl.weight_decay = 0.01  # AdamW decay on matrices
    c.rl.grad_clip = 1.0  # global-norm clip
    c.rl.objective = "pg"  # clipped policy-gradient surrogate
    c.rl.loss_preset = "dapo"  # clip-higher 0.2 / 0.28, no KL, token-mean
    config_files.unset_all(c.rl.loss)  # no overrides of the preset
    # Dr. GRPO (r - mean_g r, no std division): in an all-wrong group ALP's small length term
    # would otherwise be scaled up to a full-size advantage for giving up early.
    c.rl.advantage = "dr_grpo"
    config_files.unset_all(c.rl.advantage_hparams)  # the estimator's defaults
    c.rl.dynamic_sampling = False  # keep every group
    c.rl.max_draws = 3  # prompt batches drawn per step at most with dynamic sampling

    c.penalty.name = "alp"  # r = correct - beta * max(p, 1/G) * L / L_max
    # beta: without the std division the length term needs weight; 0.4 as in configs/default.py,
    # whose L / L_max (~50 / 160) is about GSM8K's (~300 / 1024). Spec default 0.1 (with grpo).
    c.penalty.hparams = ml_collections.ConfigDict({"beta": 0.4})

    c.budget.schedule = "constant"  # the same budget every step
    c.budget.hparams = ml_collections.ConfigDict({"value": 1024})  # L_max of ALP, in tokens
    c.budget.bucket = 0  # budgets are already round numbers
    c.budget.max_new_tokens = 1024  # sampler width: the largest budget (training and eval)

    c.sampling.temperature = 1.0  # rollout temperature
    c.sampling.top_p = 1.0  # no nucleus truncation during training
    c.sampling.top_k = 0  # no top-k
    c.sampling.num_slots = 0  # one static batch of P x G = 512 rows (fits at 1024 tokens)

    c.eval.every = 50  # RL steps between held-out evaluations
    c.eval.greedy = True  # greedy decoding for evaluation (Qwen2.5-Instruct is fine greedy)
    c.eval.budget = 1024  # max_new_tokens at evaluation
    c.eval.sweep = (128, 256, 512, 1024)  # budgets of the accuracy-vs-budget curve

    c.checkpoint.every = 50  # steps between checkpoints
    c.checkpoint.keep = 2  # last checkpoints kept (plus the best by accuracy per token)
    c.checkpoint.export = True  # export the final policy as a Hugging Face directory

    c.progress = True  # show a progress bar

    if arg == "dler":  # DLER (arXiv 2510.15110): truncation + its optimisation recipe
        c.penalty.name = "truncation"  # r = correct, 0.1 * correct if truncated
        c.penalty.hparams = ml_collections.ConfigDict({"kappa": 0.1})  # DLER's factor
        c.budget.hparams.value = 512  # truncation length (paper: 4000 for R1-distill on MATH)
        c.rl.advantage = "batch_whiten"  # group-centred, batch-whitened over tokens
        c.rl.advantage_hparams.boost = 0.1  # + 0.1 * correct
        c.rl.dynamic_sampling = True  # drop all-equal groups and draw more prompts
    return c
