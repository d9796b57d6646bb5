r"""Default run: a tiny model learns the synthetic task verbosely, then GRPO + ALP makes it terse.

Command (the README's first quick-start line):
  python -m lenrl.launch --config=configs/default.py --workdir=runs/default
Runtime: about 9 minutes on 2 idle CPU cores (no accelerator needed).
Expected (seed 0, measured): phase 1 (supervised, verbose chains of thought) reaches 0.972 held-out
accuracy with completions of 80 tokens on average; phase 2 (50 GRPO steps with the Adaptive Length
Penalty) cuts that to 29 tokens (-63%) at 0.996 accuracy. Results land in the workdir:
metrics.jsonl, tb/, checkpoints, training.png, budget_curve.png, summary.json and export/ (a
Hugging Face checkpoint of the final policy).

Variants: `--config=configs/default.py:smoke` is a one-minute run for tests.
"""

import ml_collections
from ml_collections.config_dict import placeholder


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0  # one seed for init, data order, sampling and updates

    c.model = ml_collections.ConfigDict()
    c.model.path = ""  # Hugging Face checkpoint dir; "" = random init from the fields below
    c.model.tokenizer = "synthetic"  # "synthetic" (built in) or "" = the checkpoint's tokenizer
    c.model.model_type = "qwen2"  # architecture of a random-init model
    c.model.hidden_size = 128  # E
    c.model.intermediate_size = 256  # F (SwiGLU)
    c.model.num_layers = 4  # decoder blocks
    c.model.num_heads = 4  # query heads
    c.model.num_kv_heads = 2  # key/value heads (GQA)
    c.model.head_dim = 32  # per-head width
    c.model.param_dtype = "float32"  # storage dtype of the weights
    c.model.dtype = "float32"  # compute dtype ("bfloat16" on accelerators)
    c.model.remat = "none"  # "none" | "full" | "dots"
    c.model.attention = "auto"  # "auto" (cuDNN on a GPU in bf16, else XLA) | "xla" | "cudnn"

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = 1  # pure data-parallel axis
    c.mesh.fsdp = -1  # data-parallel axis that also shards params; -1 = remaining devices
    c.mesh.tensor = 1  # tensor-parallel axis (heads, MLP, vocab)

    c.data = ml_collections.ConfigDict()
    c.data.kind = "synthetic"  # "synthetic" | "jsonl" | "parquet" | "hf_disk" | "tfds"
    c.data.path = ""  # file/dir/glob for jsonl/parquet/hf_disk; dataset name for tfds
    c.data.data_dir = ""  # tfds data_dir
    c.data.question_field = "question"  # field holding the problem (file sources)
    c.data.answer_field = "answer"  # field holding the gold answer (file sources)
    c.data.solution_field = ""  # field with a worked solution for the warm start ("" = none)
    c.data.difficulty_field = ""  # optional difficulty field
    c.data.verifier = "synthetic"  # "synthetic" | "gsm8k" | "math"
    c.data.think_in_prompt = False  # the chat template already opens <think> (R1-distill)
    c.data.num_train = 20000  # synthetic train problems
    c.data.synthetic = ml_collections.ConfigDict()  # lenrl.data.synthetic.SyntheticConfig fields
    c.data.synthetic.min_ops = 2  # fewest +/- operations per problem (difficulty level)
    c.data.synthetic.max_ops = 4  # most operations per problem
    c.data.synthetic.max_checks_per_op = 3  # redundant re-checks ~ UniformInt[0, this * ops]
    # Always restate the problem first: the tiny model is more accurate with the operations
    # copied next to its working (RL keeps the restatement and drops the re-checks).
    c.data.synthetic.restate_prob = 1.0  # probability of the "problem ..." restatement
    c.data.num_eval = 500  # held-out problems evaluated
    c.data.eval_seed = -1  # seed of the synthetic held-out set (-1 = config.seed)
    c.data.max_prompt_len = 16  # prompt width (tokens) of the update batch; longer is an error

    c.sft = ml_collections.ConfigDict()
    c.sft.steps = 500  # supervised warm-start steps (0 = skip)
    c.sft.batch_size = 32  # sequences per step
    c.sft.max_len = 128  # completion width (tokens) for the warm start (the longest is 116)
    c.sft.learning_rate = 3e-3  # peak learning rate (warm-up + cosine)
    c.sft.warmup_steps = 50  # linear warm-up steps
    c.sft.packing = False  # pack the examples into rows of max_prompt_len + max_len (no padding)
    c.sft.bucketing = False  # steps of one length bucket within a token budget, not batch_size
    c.sft.token_budget = 4096  # bucketing: padded tokens per step, examples x bucket bound
    c.sft.bucket_boundaries = (48, 80, 112, 144)  # bucket bounds (prompt + completion tokens)
    c.sft.bucket_window = 1024  # bucketing: examples sorted into buckets together

    c.rl = ml_collections.ConfigDict()
    c.rl.steps = 50  # GRPO steps
    c.rl.prompts_per_step = 32  # P
    c.rl.group_size = 8  # G samples per prompt
    c.rl.epochs = 1  # mu: passes over each rollout batch
    c.rl.num_minibatches = 2  # optimizer steps per pass
    c.rl.num_microbatches = 1  # gradient accumulation per optimizer step
    c.rl.max_update_widths = 8  # completion widths the update compiles for, at most (padded)
    c.rl.packing = False  # pack samples into rows of max_prompt_len + max_new_tokens (no padding)
    c.rl.learning_rate = 1e-4  # peak learning rate
    c.rl.lr_schedule = "constant"  # "constant" | "cosine" (decay to 10% over the run)
    c.rl.warmup_steps = 0  # learning-rate warm-up (optimizer steps)
    c.rl.weight_decay = 0.0  # AdamW decay on matrices
    c.rl.grad_clip = 1.0  # global-norm clip
    c.rl.objective = "pg"  # "pg" (clipped surrogate) | "drpo" (DisCO-form DRPO objective)
    c.rl.loss_preset = "dapo"  # "grpo" | "dapo": clip range, KL and aggregation defaults
    c.rl.loss = ml_collections.ConfigDict()  # overrides of the preset (None = preset's value)
    c.rl.loss.eps_low = placeholder(float)  # lower clip range
    c.rl.loss.eps_high = placeholder(float)  # upper clip range (clip-higher)
    c.rl.loss.dual_clip = placeholder(float)  # dual-clip bound c > 1
    c.rl.loss.beta = 0.05  # KL to the warm-start policy: holds accuracy while length falls
    c.rl.loss.kl_estimator = placeholder(str)  # "k1" | "k2" | "k3"
    c.rl.loss.loss_agg = placeholder(str)  # token_mean | seq_mean_token_mean | ..._sum_norm
    c.rl.loss.mask_truncated = placeholder(bool)  # drop truncated samples from the loss
    # Dr. GRPO (no std normalisation): ALP's small floor penalty on unsolved prompts stays small
    # instead of being scaled up to a full-size advantage that rewards giving up early.
    c.rl.advantage = "dr_grpo"  # "grpo" | "dr_grpo" | "rloo" | "batch_whiten" | ...
    c.rl.advantage_hparams = (
        ml_collections.ConfigDict()
    )  # the estimator's options (None = its default)
    c.rl.advantage_hparams.boost = placeholder(float)  # batch_whiten: + boost * correct (DLER 0.1)
    c.rl.advantage_hparams.eps = placeholder(float)  # std floor of grpo / batch_whiten / hbpo
    c.rl.advantage_hparams.l_max = placeholder(int)  # positive_group: length normaliser
    c.rl.advantage_hparams.lam = placeholder(float)  # positive_group: DRPO weight temperature
    c.rl.advantage_hparams.num_subgroups = placeholder(int)  # hbpo: budget subgroups K
    c.rl.dynamic_sampling = False  # drop all-equal groups and draw more prompts
    c.rl.max_draws = 3  # prompt batches drawn per step at most with dynamic sampling

    c.penalty = ml_collections.ConfigDict()
    c.penalty.name = "alp"  # a method of lenrl.penalties (spec section 1)
    c.penalty.hparams = ml_collections.ConfigDict({"beta": 0.4})  # its hyperparameters

    c.budget = ml_collections.ConfigDict()
    c.budget.schedule = "constant"  # a lenrl.schedules function: constant, tlts, siri, rounds...
    c.budget.hparams = ml_collections.ConfigDict({"value": 160})  # its arguments
    c.budget.bucket = 0  # round budgets up to a multiple of this (0 = off)
    c.budget.max_new_tokens = 160  # sampler width: the largest budget any sample can get

    c.sampling = ml_collections.ConfigDict()
    c.sampling.temperature = 1.0  # rollout temperature
    c.sampling.top_p = 1.0  # nucleus mass (1 = off)
    c.sampling.top_k = 0  # top-k (0 = off)
    c.sampling.num_slots = 0  # decode slots for slot refill (0 = one static batch)

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 10  # RL steps between held-out evaluations (0 = only before/after)
    c.eval.greedy = True  # greedy decoding for evaluation
    c.eval.budget = 160  # max_new_tokens at evaluation
    c.eval.num_slots = 0  # decode rows at evaluation (0 = all prompts at once; set for big sets)
    c.eval.sweep = (24, 32, 48, 64, 96, 160)  # budgets of the accuracy-vs-budget curve

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 10  # steps between checkpoints (each phase)
    c.checkpoint.keep = 2  # last checkpoints kept (plus the best by eval accuracy per token)
    c.checkpoint.export = True  # export the final policy as a Hugging Face directory

    c.log_every = 1  # steps between metric rows
    c.progress = True  # show a progress bar

    if arg == "smoke":  # about a minute on 2 cores: for tests and notebooks
        c.model.hidden_size = 64
        c.model.intermediate_size = 128
        c.model.num_layers = 2
        c.model.head_dim = 16
        c.data.num_train = 512
        c.data.num_eval = 16
        c.sft.steps = 6
        c.sft.batch_size = 8
        c.rl.steps = 3
        c.rl.prompts_per_step = 4
        c.rl.group_size = 4
        c.eval.every = 0
        c.eval.sweep = (32, 160)
        c.checkpoint.every = 2
        c.progress = False
    elif arg:
        raise ValueError(f"configs/default.py takes no argument or 'smoke', got {arg!r}")
    return c
