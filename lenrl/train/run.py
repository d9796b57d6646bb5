"""`Run`: the objects both training phases share, and where host data goes on the mesh.

Built once from the config (mesh, tokenizer, model, metric writer, evaluation set and sampler).
Its placement helpers are what make the same trainer code run on one process or on several:
`Run.put` (a whole batch the same on every process), `Run.put_rows` (this process's rows of a
batch), `Run.shared` (host-identical state), `Run.rows` / `Run.iterator` (which prompts this
process draws); see `lenrl.train.multihost`.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from lenrl.data.pipeline import make_prompt_iterator
from lenrl.evaluation import evaluate
from lenrl.sampling.sampler import make_sampler
from lenrl.sharding import AxisRules
from lenrl.train import setup
from lenrl.train.checkpoints import as_path
from lenrl.train.metrics import MetricWriter
from lenrl.train.multihost import Rows, is_main, packed_sharding

SAMPLE_KEY, UPDATE_KEY, EVAL_KEY = 1, 2, 3


class Run:
    """The objects shared by both phases (built once from the config)."""

    def __init__(self, config, workdir: str | os.PathLike):
        setup.check(config)
        self.config, self.workdir = config, as_path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mesh = setup.build_mesh(config)
        self.rules = AxisRules()
        self.tokenizer = setup.build_tokenizer(config, self.workdir)
        model = setup.build_model(config, self.tokenizer, self.mesh)
        self.graphdef, self.params = nnx.split(model)
        self.model_cfg = model.cfg
        self.key = jax.random.key(config.seed)
        self.writer = MetricWriter(self.workdir)
        eval_source = setup.build_source(config, "eval")
        self.eval_examples = [
            eval_source[i] for i in range(min(config.data.num_eval, len(eval_source)))
        ]
        self.eval_sampler = make_sampler(
            self.graphdef,
            setup.sampling_config(
                config,
                self.tokenizer,
                greedy=config.eval.greedy,
                num_prompts=len(self.eval_examples),
            ),
            mesh=self.mesh,
            model_cfg=self.model_cfg,
        )

    def batch_sharding(self, x):
        axes = ("batch",) + (None,) * (x.ndim - 1)
        return NamedSharding(self.mesh, self.rules.spec(axes, x.shape, self.mesh))

    def on_mesh(self, tree):
        """Leaves not already laid out on the mesh (e.g. optimizer counters) become replicated
        over it, so jitted steps see one device set."""
        replicated = NamedSharding(self.mesh, PartitionSpec())

        def one(x):
            sh = getattr(x, "sharding", None)
            if isinstance(sh, NamedSharding) and sh.mesh == self.mesh:
                return x
            return jax.device_put(x, replicated)

        return jax.tree.map(one, tree)

    def shared(self, tree):
        """Values every process computes alike (the penalty state): on several processes they
        become replicated global arrays, so that they enter jitted steps and checkpoints like
        the parameters; on one process they stay as they are."""
        return tree if jax.process_count() == 1 else self.on_mesh(tree)

    def put(self, tree):
        """Host arrays of a whole batch (the same on every process) -> batch-sharded arrays."""
        if jax.process_count() == 1:
            return jax.tree.map(lambda x: jax.device_put(x, self.batch_sharding(x)), tree)

        def one(x):
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, self.batch_sharding(x), lambda i: x[i])

        return jax.tree.map(one, tree)

    def put_packed(self, tree):
        """Host arrays of a whole `PackedBatch` (``[K, B, R]`` / ``[K, S]``, the same on every
        process) -> arrays sharded over their rows (axis 1); the ``K`` bins stay whole."""

        def one(x):
            x = np.asarray(x)
            sharding = packed_sharding(self.mesh, self.rules, x.shape)
            if jax.process_count() == 1:
                return jax.device_put(x, sharding)
            return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])

        return jax.tree.map(one, tree)

    def put_packed_rows(self, tree, rows: Rows):
        """This process's share of a packed batch -> global arrays (`put_packed` on one process,
        `Rows.to_global_packed` on several): the packed twin of `put_rows`."""
        return self.put_packed(tree) if jax.process_count() == 1 else rows.to_global_packed(tree)

    def put_rows(self, tree, rows: Rows):
        """This process's rows of a batch -> batch-sharded global arrays."""
        return self.put(tree) if jax.process_count() == 1 else rows.to_global(tree)

    def jit_update(self, update, params, opt_state):
        """``jax.jit(update)`` that keeps the params' and optimizer state's shardings and donates
        both (`lenrl.train.update.make_update`'s ``(params, opt_state, batch, key, step)``)."""
        param_sh = jax.tree.map(lambda x: x.sharding, params)
        opt_sh = jax.tree.map(lambda x: x.sharding, opt_state)
        return jax.jit(update, out_shardings=(param_sh, opt_sh, None), donate_argnums=(0, 1))

    def rows(self, size: int) -> Rows:
        """This process's rows of an ``size``-row batch."""
        return Rows.of(self.mesh, self.rules, size)

    def step_key(self, stream: int, step: int):
        return jax.random.fold_in(jax.random.fold_in(self.key, stream), step)

    def evaluate(self, params, tag: str, step: int):
        cfg = self.config
        metrics, records = evaluate(
            self.eval_sampler,
            params,
            self.tokenizer,
            self.eval_examples,
            budget=cfg.eval.budget,
            verifier=cfg.data.verifier,
            key=self.step_key(EVAL_KEY, step),
            think_in_prompt=cfg.data.get("think_in_prompt", False),
        )
        self.writer.write(step, {f"eval/{k}": v for k, v in metrics.items()}, phase=tag)
        return metrics, records

    def iterator(self, rows: Rows, group: int, state: dict | None, seed_offset: int):
        """This process's prompts: ``group`` rows per prompt, so ``(hi - lo) / group`` a batch."""
        if (rows.hi - rows.lo) % group:
            raise ValueError(
                f"a process holds {rows.hi - rows.lo} of the {rows.size} samples of a step, which "
                f"splits groups of {group}; make config.rl.prompts_per_step a multiple of the "
                f"{rows.count} data shards."
            )
        it = make_prompt_iterator(
            setup.build_source(self.config, "train"),
            batch_size=(rows.hi - rows.lo) // group,
            seed=self.config.seed + seed_offset,
            shard_index=rows.index,
            shard_count=rows.count,
        )
        if state:
            it.set_state(state)
        return it

    def progress(self, total: int, start: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            initial=start,
            desc=desc,
            disable=not (self.config.progress and is_main()),
            dynamic_ncols=True,
        )
