"""`lenrl.distributed`: settings from arguments / environment, and a real two-process CPU run."""

import os
import subprocess
import sys
import textwrap

import multidevice
import pytest

from lenrl import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_single_host_when_nothing_is_set():
    p = distributed.plan(env={})
    assert p.mode == "single"


def test_initialize_is_a_noop_on_one_host(monkeypatch):
    for var in (
        "LENRL_DISTRIBUTED",
        "LENRL_COORDINATOR",
        "LENRL_NUM_PROCESSES",
        "LENRL_PROCESS_ID",
        "JAX_COORDINATOR_ADDRESS",
        "JAX_NUM_PROCESSES",
        "JAX_PROCESS_ID",
        "TPU_WORKER_HOSTNAMES",
        "TPU_PROCESS_ADDRESSES",
        "MEGASCALE_COORDINATOR_ADDRESS",
        "MEGASCALE_NUM_SLICES",
        "CLOUD_TPU_TASK_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    assert distributed.initialize() is False
    assert distributed.initialize(num_processes=1) is False


def test_arguments():
    p = distributed.plan("10.0.0.1:1234", 4, 3, env={})
    assert (p.mode, p.coordinator_address, p.num_processes, p.process_id) == (
        "explicit",
        "10.0.0.1:1234",
        4,
        3,
    )


@pytest.mark.parametrize(
    "prefix,coord_var", [("LENRL_", "LENRL_COORDINATOR"), ("JAX_", "JAX_COORDINATOR_ADDRESS")]
)
def test_environment(prefix, coord_var):
    env = {coord_var: "h1:8476", f"{prefix}NUM_PROCESSES": "2", f"{prefix}PROCESS_ID": "1"}
    p = distributed.plan(env=env)
    assert (p.mode, p.coordinator_address, p.num_processes, p.process_id) == (
        "explicit",
        "h1:8476",
        2,
        1,
    )


def test_precedence_argument_then_lenrl_then_jax():
    env = {
        "LENRL_COORDINATOR": "a:1",
        "JAX_COORDINATOR_ADDRESS": "b:2",
        "JAX_NUM_PROCESSES": "3",
        "LENRL_PROCESS_ID": "2",
        "JAX_PROCESS_ID": "0",
    }
    p = distributed.plan(env=env)
    assert (p.coordinator_address, p.num_processes, p.process_id) == ("a:1", 3, 2)
    p = distributed.plan(coordinator_address="c:3", process_id=1, env=env)
    assert (p.coordinator_address, p.num_processes, p.process_id) == ("c:3", 3, 1)


def test_one_process_is_single_host():
    assert distributed.plan(env={"LENRL_NUM_PROCESSES": "1"}).mode == "single"
    assert distributed.plan("h:1", 1, 0, env={}).mode == "single"


@pytest.mark.parametrize(
    "kwargs,env,names",
    [
        (
            {},
            {"LENRL_PROCESS_ID": "0"},
            [
                "LENRL_PROCESS_ID=0",
                "coordinator_address",
                "LENRL_COORDINATOR",
                "num_processes",
                "LENRL_NUM_PROCESSES",
            ],
        ),
        ({"process_id": 1}, {}, ["process_id=1", "num_processes", "JAX_NUM_PROCESSES"]),
        (
            {},
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"},
            ["process_id", "LENRL_PROCESS_ID"],
        ),
    ],
)
def test_partial_settings_name_what_is_missing(kwargs, env, names):
    with pytest.raises(ValueError, match="partial multi-host setting") as e:
        distributed.plan(**kwargs, env=env)
    for name in names:
        assert name in str(e.value)


@pytest.mark.parametrize(
    "kwargs,env,match",
    [
        (
            {},
            {"LENRL_COORDINATOR": "h:1", "LENRL_NUM_PROCESSES": "two", "LENRL_PROCESS_ID": "0"},
            "LENRL_NUM_PROCESSES='two' is not an integer",
        ),
        (
            {"coordinator_address": "h:1", "num_processes": 2, "process_id": 2},
            {},
            r"process_id=2 is outside \[0, 2\)",
        ),
        (
            {},
            {"JAX_COORDINATOR_ADDRESS": "h1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"},
            "JAX_COORDINATOR_ADDRESS='h1': expected host:port",
        ),
        ({}, {"LENRL_DISTRIBUTED": "yes"}, "LENRL_DISTRIBUTED='yes'"),
        (
            {"coordinator_address": "h:1", "num_processes": 0, "process_id": 0},
            {},
            "num_processes=0: the number of processes must be >= 1",
        ),
    ],
)
def test_malformed_settings(kwargs, env, match):
    with pytest.raises(ValueError, match=match):
        distributed.plan(**kwargs, env=env)


@pytest.mark.parametrize(
    "env,auto",
    [
        ({"TPU_WORKER_HOSTNAMES": "t-0,t-1,t-2,t-3"}, True),
        ({"TPU_WORKER_HOSTNAMES": "t-0"}, False),
        ({"TPU_PROCESS_ADDRESSES": "10.0.0.1:8471,10.0.0.2:8471"}, True),
        ({"MEGASCALE_COORDINATOR_ADDRESS": "10.0.0.1"}, True),
        ({"MEGASCALE_NUM_SLICES": "2"}, True),
        ({"MEGASCALE_NUM_SLICES": "1"}, False),
        ({"CLOUD_TPU_TASK_ID": "2"}, True),
        ({"CLOUD_TPU_TASK_ID": "0"}, False),
        ({"LENRL_DISTRIBUTED": "auto"}, True),
        ({"LENRL_DISTRIBUTED": "off", "TPU_WORKER_HOSTNAMES": "t-0,t-1"}, False),
    ],
)
def test_tpu_pods_are_auto_detected(env, auto):
    assert distributed.plan(env=env).mode == ("auto" if auto else "single")


def test_explicit_settings_win_over_tpu_detection():
    env = {
        "TPU_WORKER_HOSTNAMES": "t-0,t-1",
        "LENRL_COORDINATOR": "t-0:1234",
        "LENRL_NUM_PROCESSES": "2",
        "LENRL_PROCESS_ID": "1",
    }
    assert distributed.plan(env=env).mode == "explicit"


# One process of the real test: 4 fake CPU devices each, 8 in all; a jitted sum over an array
# sharded across both processes needs a cross-process all-reduce (gloo on CPU).
_WORKER = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from lenrl import distributed

    started = distributed.initialize()  # from LENRL_* in the environment
    mesh = jax.make_mesh((jax.device_count(),), ("data",), devices=jax.devices())
    pid = jax.process_index()
    local_4x2 = np.arange(8, dtype=np.float32).reshape(4, 2) + 8 * pid  # rows 4*pid .. 4*pid+3
    x_8x2 = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local_4x2,
                                                   (8, 2))
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(x_8x2)
    print(json.dumps({"started": started, "process_count": jax.process_count(),
                      "process_index": pid, "device_count": jax.device_count(),
                      "local_device_count": jax.local_device_count(),
                      "total": float(total)}), flush=True)
""")


def test_two_processes_on_cpu(tmp_path):
    results = multidevice.run_processes(_WORKER, processes=2, devices=4, timeout=120)
    assert sorted(r["process_index"] for r in results) == [0, 1]
    for r in results:
        assert r["started"] is True
        assert (r["process_count"], r["device_count"], r["local_device_count"]) == (2, 8, 4)
        assert r["total"] == sum(range(16))


def test_auto_without_a_cluster_says_what_to_set(tmp_path):
    # A fresh process: jax.distributed can be initialised at most once per process.
    code = (
        "from lenrl import distributed\n"
        "try:\n"
        "    distributed.initialize()\n"
        "except ValueError as e:\n"
        "    print('ERR', e)\n"
    )
    cluster = (
        "LENRL_",
        "JAX_",
        "TPU_",
        "MEGASCALE_",
        "CLOUD_TPU",
        "SLURM_",
        "OMPI_",
        "KUBERNETES_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(cluster)}
    env.update(LENRL_DISTRIBUTED="auto", JAX_PLATFORMS="cpu")
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "ERR LENRL_DISTRIBUTED=auto, but jax could not detect the cluster" in r.stdout, (
        r.stdout + r.stderr
    )
    assert "LENRL_COORDINATOR" in r.stdout
