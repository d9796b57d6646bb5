"""Device mesh and logical-axis sharding rules.

A mesh has three axes: ``data`` (pure data parallelism), ``fsdp`` (data parallelism with
parameters and optimizer state sharded across it) and ``tensor`` (heads / MLP / vocab split).
Arrays name their dimensions with logical axes (``batch``, ``embed``, ``heads`` ...); one
`AxisRules` object maps logical names to mesh axes, so a new sharding strategy is a change to
one object. A dimension whose size the mesh axes do not divide stays replicated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

MeshAxes = str | tuple[str, ...] | None


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Mesh shape; one of the sizes may be -1 to take the remaining devices."""

    data: int = 1
    fsdp: int = -1
    tensor: int = 1

    def __post_init__(self):
        sizes = (self.data, self.fsdp, self.tensor)
        if sum(s == -1 for s in sizes) > 1:
            raise ValueError(f"mesh {sizes}: at most one of data/fsdp/tensor may be -1.")
        if any(s == 0 or s < -1 for s in sizes):
            raise ValueError(f"mesh {sizes}: sizes must be positive or -1.")

    def resolve(self, num_devices: int) -> tuple[int, int, int]:
        sizes = [self.data, self.fsdp, self.tensor]
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if num_devices % known:
                raise ValueError(
                    f"mesh (data={self.data}, fsdp={self.fsdp}, tensor={self.tensor}) cannot "
                    f"fill {num_devices} devices: {num_devices} is not a multiple of {known}."
                )
            sizes[sizes.index(-1)] = num_devices // known
        if math.prod(sizes) != num_devices:
            raise ValueError(
                f"mesh (data={sizes[0]}, fsdp={sizes[1]}, tensor={sizes[2]}) needs "
                f"{math.prod(sizes)} devices but {num_devices} are available; set one axis to -1."
            )
        return tuple(sizes)


def make_mesh(cfg: MeshConfig = MeshConfig(), devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A `Mesh` with axes ``(data, fsdp, tensor)`` over ``devices`` (default: all devices)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = cfg.resolve(len(devices))
    try:
        arr = jax.experimental.mesh_utils.create_device_mesh(shape, devices=devices)
    except Exception:  # noqa: BLE001 - non-physical shapes on some backends: plain reshape
        arr = np.asarray(devices).reshape(shape)
    return Mesh(arr, MESH_AXES)


DEFAULT_RULES: tuple[tuple[str, MeshAxes], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("norm", None),
    ("cache_length", None),
)


@dataclasses.dataclass(frozen=True)
class AxisRules:
    """Maps logical axis names to mesh axes."""

    rules: tuple[tuple[str, MeshAxes], ...] = DEFAULT_RULES

    def __post_init__(self):
        names = [n for n, _ in self.rules]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"AxisRules: logical axes {sorted(dup)} are given more than once.")
        for name, axes in self.rules:
            for a in _as_tuple(axes):
                if a not in MESH_AXES:
                    raise ValueError(
                        f"AxisRules: {name!r} maps to unknown mesh axis {a!r}; use {MESH_AXES}."
                    )

    def mesh_axes(self, logical: str | None) -> tuple[str, ...]:
        if logical is None:
            return ()
        table = dict(self.rules)
        if logical not in table:
            raise KeyError(f"logical axis {logical!r} has no rule; known: {sorted(table)}.")
        return _as_tuple(table[logical])

    def spec(self, logical_axes: Sequence[str | None], shape=None, mesh: Mesh | None = None):
        """`PartitionSpec` for an array with these logical dimension names.

        Two dimensions of one array may not use the same mesh axis (that is an error in the
        rules). With ``shape`` and ``mesh``, a dimension the mesh axes do not divide is left
        replicated (tiny models on many devices).
        """
        used: dict[str, str] = {}
        out = []
        for i, name in enumerate(logical_axes):
            axes = self.mesh_axes(name)
            for a in axes:
                if a in used:
                    raise ValueError(
                        f"AxisRules: logical axes {used[a]!r} and {name!r} of one array both map "
                        f"to mesh axis {a!r}."
                    )
                used[a] = name
            if axes and shape is not None and mesh is not None:
                size = math.prod(mesh.shape[a] for a in axes)
                if shape[i] % size:
                    axes = ()
            out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
        return PartitionSpec(*out)

    def sharding(self, mesh: Mesh, logical_axes, shape=None) -> NamedSharding:
        return NamedSharding(mesh, self.spec(logical_axes, shape, mesh))


def _as_tuple(axes: MeshAxes) -> tuple[str, ...]:
    if axes is None:
        return ()
    return (axes,) if isinstance(axes, str) else tuple(axes)


def constrain(x: jax.Array, mesh: Mesh | None, rules: AxisRules, logical_axes) -> jax.Array:
    """``with_sharding_constraint`` by logical names; identity without a mesh."""
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, rules.sharding(mesh, logical_axes, x.shape))
