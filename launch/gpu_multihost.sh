#!/usr/bin/env bash
# Train lenrl on several GPU hosts: one process per host, started over SSH.
#
# Usage: launch/gpu_multihost.sh --hosts h1,h2[,...] [options] [-- --config.key=value ...]
#
# Host i (from 0, in --hosts order) runs
#   cd DIR && env LENRL_COORDINATOR=COORD:PORT LENRL_NUM_PROCESSES=N LENRL_PROCESS_ID=i \
#     python3 -m lenrl.launch --config=CONFIG --workdir=WORKDIR ARGS...
# so that `lenrl.distributed.initialize()` joins the N processes (process 0 hosts the
# coordinator). Output streams here, each line prefixed with [host]; when one host fails or
# on Ctrl-C the others are stopped. lenrl must be installed on every host (see --sync and
# --install) and the hosts must reach COORD:PORT. WORKDIR should be on a shared file system.
#
# Required:
#   --hosts H1,H2,...     SSH destinations ([user@]host), one process each; H1 is process 0
# Options:
#   --coordinator ADDR    address of H1 as the other hosts reach it (default: H1 without user@)
#   --port PORT           coordinator port on H1 (default 8476)
#   --remote-dir DIR      lenrl checkout on every host, relative to $HOME (default lenrl)
#   --sync                first copy --repo to DIR on every host with rsync
#   --repo PATH           local checkout to copy with --sync (default: this checkout)
#   --install             first run `pip install -e ".[cuda]"` in DIR on every host
#   --config FILE[:ARG]   experiment config, relative to DIR (default configs/default.py)
#   --workdir DIR         run directory on every host (default runs/multihost)
#   --python PY           python on the hosts (default python3)
#   --env KEY=VALUE       extra environment for every process (repeatable), e.g. NCCL_DEBUG=INFO
#   --ssh "CMD"           ssh command (default "ssh -tt -o BatchMode=yes"; -tt so that stopping
#                         the local ssh also stops the remote process)
#   --dry-run             print every command (one per line) instead of running it
#   -h, --help            this text
#   -- ARGS...            passed on to lenrl.launch, e.g. -- --config.rl.steps=200
#
# Example:
#   launch/gpu_multihost.sh --hosts gpu-a,gpu-b --coordinator 10.0.0.11 --sync --install \
#     --workdir /shared/runs/alp -- --config.model.dtype=bfloat16

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"

HOSTS="" COORD="" PORT=8476 REMOTE_DIR="lenrl" SYNC=0 REPO="$(dirname "$HERE")" INSTALL=0
CONFIG="configs/default.py" WORKDIR="runs/multihost" PY="python3" SSH_CMD="ssh -tt -o BatchMode=yes"
DRY_RUN=0
ENVS=() EXTRA=()

while [[ $# -gt 0 ]]; do
  case $1 in
    --hosts) need_value "$1" $#; HOSTS=$2; shift 2 ;;
    --coordinator) need_value "$1" $#; COORD=$2; shift 2 ;;
    --port) need_value "$1" $#; PORT=$2; shift 2 ;;
    --remote-dir) need_value "$1" $#; REMOTE_DIR=$2; shift 2 ;;
    --sync) SYNC=1; shift ;;
    --repo) need_value "$1" $#; REPO=$2; shift 2 ;;
    --install) INSTALL=1; shift ;;
    --config) need_value "$1" $#; CONFIG=$2; shift 2 ;;
    --workdir) need_value "$1" $#; WORKDIR=$2; shift 2 ;;
    --python) need_value "$1" $#; PY=$2; shift 2 ;;
    --env) need_value "$1" $#; ENVS+=("$2"); shift 2 ;;
    --ssh) need_value "$1" $#; SSH_CMD=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument: $1" ;;
  esac
done

require hosts "$HOSTS"
IFS=, read -ra HOST_LIST <<<"$HOSTS"
N=${#HOST_LIST[@]}
for h in "${HOST_LIST[@]}"; do
  [[ -n $h ]] || die "--hosts $HOSTS has an empty entry"
done
[[ $PORT =~ ^[0-9]+$ ]] || die "--port takes a number, got '$PORT'"
for kv in "${ENVS[@]}"; do
  [[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env takes KEY=VALUE, got '$kv'"
done
COORD=${COORD:-${HOST_LIST[0]#*@}}
read -ra SSH <<<"$SSH_CMD"
dir=$(quote "$REMOTE_DIR")

# 1. Optional: code and install, host by host.
if [[ $SYNC == 1 ]]; then
  [[ -f $REPO/pyproject.toml ]] || die "--repo $REPO has no pyproject.toml (not a lenrl checkout?)"
  for h in "${HOST_LIST[@]}"; do
    run rsync -az --delete --exclude=.git --exclude=runs --exclude='*.egg-info' \
      --exclude=__pycache__ --exclude=.venv --exclude=.pytest_cache "$REPO/" "$h:$REMOTE_DIR/"
  done
fi
if [[ $INSTALL == 1 ]]; then
  for h in "${HOST_LIST[@]}"; do
    run "${SSH[@]}" "$h" "cd $dir && $(quote "$PY") -m pip install -q -e \".[cuda]\""
  done
fi

# 2. One process per host, all at once.
# shellcheck disable=SC2317  # called by the trap
stop_all() {
  local pid
  for pid in "${BG_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

for i in "${!HOST_LIST[@]}"; do
  h=${HOST_LIST[$i]}
  cmd=$(quote_all env LENRL_COORDINATOR="$COORD:$PORT" LENRL_NUM_PROCESSES="$N" \
    LENRL_PROCESS_ID="$i" "${ENVS[@]}" "$PY" -m lenrl.launch --config="$CONFIG" \
    --workdir="$WORKDIR" "${EXTRA[@]}")
  run_bg "$h" "${SSH[@]}" "$h" "cd $dir && $cmd"
done
[[ $DRY_RUN == 1 ]] && exit 0

# 3. Wait; the first failure stops the rest.
status=0
running=("${BG_PIDS[@]}")
while [[ ${#running[@]} -gt 0 ]]; do
  still=()
  for pid in "${running[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      still+=("$pid")
    elif ! wait "$pid"; then
      status=1
    fi
  done
  running=("${still[@]}")
  if [[ $status != 0 ]]; then
    echo "error: a host failed; stopping the others" >&2
    break
  fi
  [[ ${#running[@]} -gt 0 ]] && sleep 2
done
exit "$status"
