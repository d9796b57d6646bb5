"""Multi-host start-up: `initialize()` starts `jax.distributed` when there are several hosts.

Call it first thing in a process, before any JAX computation (e.g. at the top of
``lenrl.launch.main``). Where the settings come from, first match wins:

1. Explicit (GPU hosts, or any cluster jax does not detect): the ``coordinator_address``,
   ``num_processes`` and ``process_id`` arguments, else the environment variables
   ``LENRL_COORDINATOR`` / ``LENRL_NUM_PROCESSES`` / ``LENRL_PROCESS_ID``, else
   ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``. All three are needed
   (a partial setting is an error naming what is missing); one process means a no-op.
2. Auto-detected (Cloud TPU pods, GKE TPU jobs, multislice): with ``LENRL_DISTRIBUTED=auto``, or
   when the environment says several TPU workers (``TPU_WORKER_HOSTNAMES`` /
   ``TPU_PROCESS_ADDRESSES`` with more than one host, ``MEGASCALE_COORDINATOR_ADDRESS``,
   ``MEGASCALE_NUM_SLICES`` > 1, ``CLOUD_TPU_TASK_ID`` > 0), jax is called with
   no arguments and finds the rest itself (TPU metadata server, Slurm, Open MPI).
3. Otherwise: a single host, nothing to do.

``LENRL_DISTRIBUTED=off`` skips everything (e.g. one process per host on purpose). On CPU, jax
uses gloo for cross-process collectives by default (``jax_cpu_collectives_implementation``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence

import jax

# argument -> (LENRL_* variable, JAX_* variable), looked up in that order after the argument.
_SOURCES = {
    "coordinator_address": ("LENRL_COORDINATOR", "JAX_COORDINATOR_ADDRESS"),
    "num_processes": ("LENRL_NUM_PROCESSES", "JAX_NUM_PROCESSES"),
    "process_id": ("LENRL_PROCESS_ID", "JAX_PROCESS_ID"),
}
_MODES = ("auto", "off")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `initialize` will do: ``mode`` is "single", "explicit" or "auto"."""

    mode: str
    coordinator_address: str | None = None  # "host:port" of process 0 (explicit mode)
    num_processes: int | None = None  # N hosts (explicit mode)
    process_id: int | None = None  # this host's index in [0, N) (explicit mode)
    reason: str = ""  # which argument / variable decided, for logs and errors


def plan(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Plan:
    """Resolves arguments and environment into a `Plan` (pure: no JAX calls).

    Raises:
      ValueError: a partial or malformed setting; the message names the flag or variable.
    """
    env = os.environ if env is None else env
    mode = env.get("LENRL_DISTRIBUTED", "").strip().lower()
    if mode and mode not in _MODES:
        raise ValueError(f"LENRL_DISTRIBUTED={mode!r}: use 'auto', 'off' or leave it unset.")
    if mode == "off":
        return Plan("single", reason="LENRL_DISTRIBUTED=off")

    given = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    values, names = {}, {}
    for key, variables in _SOURCES.items():
        values[key], names[key] = _lookup(key, given[key], variables, env)
    if any(v is not None for v in values.values()):
        return _explicit(values, names)
    if mode == "auto":
        return Plan("auto", reason="LENRL_DISTRIBUTED=auto")
    why = _tpu_pod(env)
    if why:
        return Plan("auto", reason=why)
    return Plan("single", reason="no multi-host setting found")


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: int | Sequence[int] | None = None,
) -> bool:
    """Starts `jax.distributed` when running on several hosts; returns whether it did.

    Args:
      coordinator_address: ``host:port`` of process 0, reachable from every host.
      num_processes: number of processes (hosts), N.
      process_id: this process's index in ``[0, N)``.
      local_device_ids: restrict this process to these local accelerators (GPU).
    Returns:
      True if the distributed system is (now) initialised, False on a single host.
    Raises:
      ValueError: a partial or malformed setting (names the argument / variable to fix).
    """
    if jax.distributed.is_initialized():
        return True
    p = plan(coordinator_address, num_processes, process_id)
    if p.mode == "single":
        return False
    logging.getLogger(__name__).info("jax.distributed.initialize: %s (%s)", p.mode, p.reason)
    if p.mode == "auto":
        try:
            jax.distributed.initialize(local_device_ids=local_device_ids)
        except ValueError as e:  # jax found no cluster to take the missing settings from
            raise ValueError(
                f"{p.reason}, but jax could not detect the cluster ({e}). Set LENRL_COORDINATOR, "
                "LENRL_NUM_PROCESSES and LENRL_PROCESS_ID, or LENRL_DISTRIBUTED=off."
            ) from e
    else:
        jax.distributed.initialize(
            coordinator_address=p.coordinator_address,
            num_processes=p.num_processes,
            process_id=p.process_id,
            local_device_ids=local_device_ids,
        )
    return True


def _lookup(key, value, variables, env):
    """(value, where it came from) for one setting: argument, then each variable in turn."""
    if value is not None:
        return value, key
    for var in variables:
        if env.get(var, "").strip():
            return env[var].strip(), var
    return None, None


def _explicit(values: dict, names: dict) -> Plan:
    set_ = [f"{names[k]}={v}" for k, v in values.items() if v is not None]
    missing = [k for k, v in values.items() if v is None]
    coord, n, pid = values["coordinator_address"], values["num_processes"], values["process_id"]
    n = _int(n, names["num_processes"]) if n is not None else None
    pid = _int(pid, names["process_id"]) if pid is not None else None
    if n == 1 and pid in (None, 0):
        return Plan("single", reason=f"{names['num_processes']}=1")
    if missing:
        hint = ", ".join(f"{k} (or {' / '.join(_SOURCES[k])})" for k in missing)
        raise ValueError(
            f"partial multi-host setting: {', '.join(set_)} given but {hint} missing. Set all "
            "three of coordinator address, number of processes and process id, or none."
        )
    if n < 1:
        raise ValueError(f"{names['num_processes']}={n}: the number of processes must be >= 1.")
    if not 0 <= pid < n:
        raise ValueError(
            f"{names['process_id']}={pid} is outside [0, {n}) given by {names['num_processes']}."
        )
    host, _, port = str(coord).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"{names['coordinator_address']}={coord!r}: expected host:port of process 0, e.g. "
            "10.0.0.1:1234."
        )
    return Plan("explicit", coord, n, pid, reason=", ".join(set_))


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not an integer.") from None


def _tpu_pod(env: Mapping[str, str]) -> str:
    """A reason string when the environment describes several TPU workers, else ""."""
    for var in ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES"):
        hosts = [h for h in env.get(var, "").split(",") if h.strip()]
        if len(hosts) > 1:
            return f"{var} lists {len(hosts)} hosts"
    if env.get("MEGASCALE_COORDINATOR_ADDRESS", "").strip():
        return "MEGASCALE_COORDINATOR_ADDRESS is set"
    slices = env.get("MEGASCALE_NUM_SLICES", "").strip()
    if slices.isdigit() and int(slices) > 1:
        return f"MEGASCALE_NUM_SLICES={slices}"
    task = env.get("CLOUD_TPU_TASK_ID", "").strip()
    if task.isdigit() and int(task) > 0:  # only a pod has a worker 1, 2, ...
        return f"CLOUD_TPU_TASK_ID={task}"
    return ""
