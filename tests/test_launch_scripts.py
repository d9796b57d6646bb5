"""launch/*.sh: syntax, --dry-run command lines, usage errors, and a fake-ssh run of the GPU one."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch")
SCRIPTS = ["tpu_vm.sh", "gpu_multihost.sh", "common.sh"]

TPU_ARGS = [
    "--name",
    "lenrl-t",
    "--type",
    "v5litepod-16",
    "--zone",
    "us-west4-a",
    "--project",
    "my-proj",
]


def sh(script, *args, env=None, timeout=60):
    return subprocess.run(
        ["bash", os.path.join(LAUNCH, script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def dry_run(script, *args):
    r = sh(script, "--dry-run", *args)
    assert r.returncode == 0, r.stderr
    return [shlex.split(line) for line in r.stdout.splitlines()]


def flag(argv, name):
    """The value of ``--name=value`` in ``argv``."""
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(values) == 1, (name, argv)
    return values[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_syntax(script):
    r = subprocess.run(
        ["bash", "-n", os.path.join(LAUNCH, script)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck():
    r = subprocess.run(
        ["shellcheck", "-x", *SCRIPTS], cwd=LAUNCH, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("script", ["tpu_vm.sh", "gpu_multihost.sh"])
def test_help_documents_every_flag(script):
    r = sh(script, "--help")
    assert r.returncode == 0
    with open(os.path.join(LAUNCH, script)) as f:
        parsed = re.findall(r"^\s+(--[a-z-]+)\)", f.read(), flags=re.M)  # the case labels
    assert len(parsed) > 8
    for name in parsed:
        assert re.search(rf"^\s+{name}\b", r.stdout, flags=re.M), name
    assert "Example:" in r.stdout


def test_tpu_vm_dry_run():
    cmds = dry_run(
        "tpu_vm.sh",
        *TPU_ARGS,
        "--workdir",
        "gs://b/runs/x",
        "--",
        "--config.rl.steps=7",
        "--config.eval.sweep=(32, 64)",
    )
    assert [c[:5] for c in cmds[:1]] == [["gcloud", "compute", "tpus", "tpu-vm", "create"]]
    create = cmds[0]
    assert create[5] == "lenrl-t"
    assert flag(create, "accelerator-type") == "v5litepod-16"
    assert flag(create, "version") == "v2-alpha-tpuv5-lite"
    assert flag(create, "zone") == "us-west4-a" and flag(create, "project") == "my-proj"

    tar, scp, install, train, delete = cmds[1:]
    assert tar[0] == "tar" and tar[tar.index("-C") + 1] == ROOT
    assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and "--worker=all" in scp
    for c in (install, train):
        assert c[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "lenrl-t"]
        assert "--worker=all" in c
    assert 'pip install -q -e ".[tpu]"' in flag(install, "command")

    remote = flag(train, "command")
    train_argv = shlex.split(remote.split(" && ", 1)[1].split(" 2>&1")[0])
    assert train_argv == [
        "env",
        "LENRL_DISTRIBUTED=auto",
        "python3",
        "-m",
        "lenrl.launch",
        "--config=configs/default.py",
        "--workdir=gs://b/runs/x",
        "--config.rl.steps=7",
        "--config.eval.sweep=(32, 64)",
    ]
    assert "tee ~/lenrl-train.log" in remote

    assert delete[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "lenrl-t"]
    assert "--quiet" in delete


def test_tpu_vm_queued_git_keep():
    cmds = dry_run(
        "tpu_vm.sh",
        *TPU_ARGS,
        "--queued",
        "--spot",
        "--version",
        "my-runtime",
        "--repo",
        "https://github.com/o/lenrl.git",
        "--ref",
        "v1",
        "--keep",
    )
    verbs = [" ".join(c[:5]) for c in cmds]
    assert verbs == [
        "gcloud compute tpus queued-resources create",
        "gcloud compute tpus queued-resources describe",
        "gcloud compute tpus tpu-vm ssh",
        "gcloud compute tpus tpu-vm ssh",
    ]  # no tar/scp for a git URL, no delete with --keep
    create = cmds[0]
    assert flag(create, "node-id") == "lenrl-t" and flag(create, "runtime-version") == "my-runtime"
    assert "--spot" in create
    assert "git clone --depth 1 --branch v1 https://github.com/o/lenrl.git lenrl" in flag(
        cmds[2], "command"
    )
    r = sh("tpu_vm.sh", *TPU_ARGS, "--queued", "--keep", "--dry-run")
    assert "queued-resources delete lenrl-t" in r.stderr  # printed for later


def test_tpu_vm_queued_delete():
    cmds = dry_run("tpu_vm.sh", *TPU_ARGS, "--queued")
    assert cmds[-1][:6] == ["gcloud", "compute", "tpus", "queued-resources", "delete", "lenrl-t"]
    assert "--force" in cmds[-1]


@pytest.mark.parametrize("drop", ["--name", "--type", "--zone", "--project"])
def test_tpu_vm_missing_required(drop):
    i = TPU_ARGS.index(drop)
    r = sh("tpu_vm.sh", *(TPU_ARGS[:i] + TPU_ARGS[i + 2 :]), "--dry-run")
    assert r.returncode == 2
    assert f"error: {drop} is required" in r.stderr
    assert "Usage: launch/tpu_vm.sh" in r.stderr
    assert r.stdout == ""  # nothing would have run


@pytest.mark.parametrize(
    "args,message",
    [
        (["--type", "v9-8"], "no default runtime for --type v9-8"),
        (["--repo", "/nonexistent"], "--repo /nonexistent is neither"),
        (["--bogus"], "unknown argument: --bogus"),
        (["--zone"], "--zone needs a value"),
    ],
)
def test_tpu_vm_bad_arguments(args, message):
    r = sh("tpu_vm.sh", *TPU_ARGS, "--dry-run", *args)
    assert r.returncode == 2 and message in r.stderr


def test_gpu_multihost_dry_run():
    cmds = dry_run(
        "gpu_multihost.sh",
        "--hosts",
        "me@gpu-a,gpu-b,gpu-c",
        "--port",
        "9999",
        "--workdir",
        "/shared/r",
        "--env",
        "NCCL_DEBUG=INFO",
        "--sync",
        "--install",
        "--",
        "--config.rl.steps=3",
    )
    assert [c[0] for c in cmds[:3]] == ["rsync"] * 3
    assert [c[-1] for c in cmds[:3]] == ["me@gpu-a:lenrl/", "gpu-b:lenrl/", "gpu-c:lenrl/"]
    assert all('pip install -q -e ".[cuda]"' in c[-1] for c in cmds[3:6])
    runs = cmds[6:]
    assert [c[-2] for c in runs] == ["me@gpu-a", "gpu-b", "gpu-c"]
    for i, c in enumerate(runs):
        assert c[0] == "ssh"
        cd, remote = c[-1].split(" && ", 1)
        assert cd == "cd lenrl"
        assert shlex.split(remote) == [
            "env",
            "LENRL_COORDINATOR=gpu-a:9999",
            "LENRL_NUM_PROCESSES=3",
            f"LENRL_PROCESS_ID={i}",
            "NCCL_DEBUG=INFO",
            "python3",
            "-m",
            "lenrl.launch",
            "--config=configs/default.py",
            "--workdir=/shared/r",
            "--config.rl.steps=3",
        ]


def test_gpu_multihost_coordinator_override():
    cmds = dry_run("gpu_multihost.sh", "--hosts", "a,b", "--coordinator", "10.0.0.1")
    assert len(cmds) == 2
    assert all("LENRL_COORDINATOR=10.0.0.1:8476" in c[-1] for c in cmds)


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "error: --hosts is required"),
        (["--hosts", "a,,b"], "empty entry"),
        (["--hosts", "a", "--env", "NOEQUALS"], "--env takes KEY=VALUE"),
        (["--hosts", "a", "--port", "x"], "--port takes a number"),
    ],
)
def test_gpu_multihost_bad_arguments(args, message):
    r = sh("gpu_multihost.sh", *args, "--dry-run")
    assert r.returncode == 2 and message in r.stderr
    assert "Usage: launch/gpu_multihost.sh" in r.stderr


# A fake `ssh` that runs the remote command locally (in $FAKE_HOME), and a fake `python` that
# prints what it was given: the real (non dry-run) path of gpu_multihost.sh, end to end. Like a
# real ssh -tt, stopping the fake ssh stops the "remote" command (its whole process group).
FAKE_SSH = """#!/usr/bin/env bash
set -m
host=${@: -2:1}; cmd=${@: -1}
cd "$FAKE_HOME" && FAKE_HOST=$host bash -c "$cmd" &
child=$!
trap 'kill -TERM -- -$child 2>/dev/null; exit 143' TERM INT HUP
wait $child
"""
FAKE_PY = """#!/usr/bin/env bash
echo "host=$FAKE_HOST id=$LENRL_PROCESS_ID n=$LENRL_NUM_PROCESSES coord=$LENRL_COORDINATOR $*"
echo $$ > "$FAKE_HOME/pid.$LENRL_PROCESS_ID"
if [[ $LENRL_PROCESS_ID == "${FAKE_FAIL:-none}" ]]; then sleep 1; echo boom; exit 3; fi
exec sleep "${FAKE_SLEEP:-0}"
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def fakes(tmp_path):
    home = tmp_path / "home"
    (home / "lenrl").mkdir(parents=True)
    for name, text in (("ssh", FAKE_SSH), ("py", FAKE_PY)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    env = {**os.environ, "FAKE_HOME": str(home)}
    yield tmp_path, env
    for pid_file in home.glob("pid.*"):  # stop anything left behind
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def test_gpu_multihost_runs_every_host(fakes):
    tmp, env = fakes
    r = sh(
        "gpu_multihost.sh",
        "--hosts",
        "a,b,c",
        "--ssh",
        f"{tmp}/ssh -tt",
        "--python",
        f"{tmp}/py",
        "--",
        "--config.rl.steps=1",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    lines = sorted(r.stdout.splitlines())
    assert len(lines) == 3
    for i, (host, line) in enumerate(zip("abc", lines, strict=True)):
        assert line.startswith(f"[{host}] host={host} id={i} n=3 coord=a:8476 -m lenrl.launch")
        assert line.endswith("--config.rl.steps=1")


def test_gpu_multihost_one_failure_stops_the_others(fakes):
    tmp, env = fakes
    env.update(FAKE_FAIL="1", FAKE_SLEEP="60")
    t0 = time.monotonic()
    r = sh(
        "gpu_multihost.sh",
        "--hosts",
        "a,b,c",
        "--ssh",
        f"{tmp}/ssh",
        "--python",
        f"{tmp}/py",
        env=env,
        timeout=50,
    )
    assert time.monotonic() - t0 < 30
    assert r.returncode == 1
    assert "[b] boom" in r.stdout
    assert "a host failed; stopping the others" in r.stderr
    home = tmp / "home"
    pids = [int((home / f"pid.{i}").read_text()) for i in (0, 2)]  # started before b failed
    deadline = time.monotonic() + 10
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, pids)), "the other hosts' processes were left running"
