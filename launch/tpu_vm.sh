#!/usr/bin/env bash
# Train lenrl on a Cloud TPU VM (one host or a pod slice): create, install, run, delete.
#
# Usage: launch/tpu_vm.sh --name NAME --type TYPE --zone ZONE --project PROJECT [options]
#                         [-- --config.key=value ...]
#
# Creates the TPU VM (or a queued resource with --queued), puts lenrl on every worker and runs
# `pip install -e .[tpu]` there, starts the same `python -m lenrl.launch` on all workers at once
# (LENRL_DISTRIBUTED=auto: jax finds the other workers itself), streams their output here (also
# kept in ~/lenrl-train.log on each worker), and deletes the VM at the end, also on failure or
# Ctrl-C, unless --keep. Needs gcloud, authenticated, with the TPU API enabled.
#
# Required:
#   --name NAME          TPU VM (and queued resource) name, e.g. lenrl-alp
#   --type TYPE          accelerator type, e.g. v5litepod-8 (one host), v5litepod-16 (4 hosts)
#   --zone ZONE          e.g. us-west4-a
#   --project PROJECT    Google Cloud project id
# Options:
#   --version VERSION    TPU runtime (software) version; default from --type: v5litepod ->
#                        v2-alpha-tpuv5-lite, v5p -> v2-alpha-tpuv5, v6e -> v2-alpha-tpuv6e,
#                        v4 -> tpu-ubuntu2204-base, v2/v3 -> tpu-vm-base
#   --queued             create through a queued resource (waits until ACTIVE)
#   --queue-timeout MIN  give up waiting for the queued resource after MIN minutes (default 120)
#   --spot               Spot capacity (cheaper, may be preempted)
#   --repo PATH|URL      lenrl source: a local directory (tarred and copied to every worker) or a
#                        git URL (cloned on every worker); default: this checkout
#   --ref REF            branch or tag to clone (git URL only)
#   --remote-dir DIR     where lenrl goes on the workers, relative to $HOME (default lenrl)
#   --config FILE[:ARG]  experiment config, relative to the repo (default configs/default.py)
#   --workdir DIR        run directory: a gs:// bucket path or a path on each worker, relative
#                        to the repo (default runs/NAME)
#   --python PY          python on the workers (default python3)
#   --keep               keep the VM at the end (delete it later with the printed command)
#   --dry-run            print every command (one per line) instead of running it
#   -h, --help           this text
#   -- ARGS...           passed on to lenrl.launch, e.g. -- --config.rl.steps=200
#
# Example:
#   launch/tpu_vm.sh --name lenrl-alp --type v5litepod-16 --zone us-west4-a \
#     --project my-project --queued --workdir gs://my-bucket/runs/alp \
#     -- --config.model.dtype=bfloat16

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"

NAME="" TYPE="" ZONE="" PROJECT="" VERSION="" QUEUED=0 QUEUE_TIMEOUT=120 SPOT=0
REPO="$(dirname "$HERE")" REF="" REMOTE_DIR="lenrl" CONFIG="configs/default.py" WORKDIR=""
PY="python3" KEEP=0 DRY_RUN=0
EXTRA=()

while [[ $# -gt 0 ]]; do
  case $1 in
    --name) need_value "$1" $#; NAME=$2; shift 2 ;;
    --type) need_value "$1" $#; TYPE=$2; shift 2 ;;
    --zone) need_value "$1" $#; ZONE=$2; shift 2 ;;
    --project) need_value "$1" $#; PROJECT=$2; shift 2 ;;
    --version) need_value "$1" $#; VERSION=$2; shift 2 ;;
    --queued) QUEUED=1; shift ;;
    --queue-timeout) need_value "$1" $#; QUEUE_TIMEOUT=$2; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --repo) need_value "$1" $#; REPO=$2; shift 2 ;;
    --ref) need_value "$1" $#; REF=$2; shift 2 ;;
    --remote-dir) need_value "$1" $#; REMOTE_DIR=$2; shift 2 ;;
    --config) need_value "$1" $#; CONFIG=$2; shift 2 ;;
    --workdir) need_value "$1" $#; WORKDIR=$2; shift 2 ;;
    --python) need_value "$1" $#; PY=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument: $1" ;;
  esac
done

require name "$NAME"
require type "$TYPE"
require zone "$ZONE"
require project "$PROJECT"
[[ $QUEUE_TIMEOUT =~ ^[0-9]+$ ]] || die "--queue-timeout takes whole minutes, got '$QUEUE_TIMEOUT'"
WORKDIR=${WORKDIR:-runs/$NAME}

if [[ -z $VERSION ]]; then
  case $TYPE in
    v5litepod-* | v5e-*) VERSION=v2-alpha-tpuv5-lite ;;
    v5p-*) VERSION=v2-alpha-tpuv5 ;;
    v6e-*) VERSION=v2-alpha-tpuv6e ;;
    v4-*) VERSION=tpu-ubuntu2204-base ;;
    v2-* | v3-*) VERSION=tpu-vm-base ;;
    *) die "no default runtime for --type $TYPE: give --version" ;;
  esac
fi

if [[ $REPO =~ ^(https?|ssh|git):// || $REPO =~ ^git@ || ($REPO == *.git && ! -d $REPO) ]]; then
  GIT_URL=$REPO
else
  GIT_URL=""
  [[ -d $REPO ]] || die "--repo $REPO is neither a directory nor a git URL"
  [[ -f $REPO/pyproject.toml ]] || die "--repo $REPO has no pyproject.toml (not a lenrl checkout?)"
  [[ -z $REF ]] || die "--ref is for a git URL --repo only"
fi

LOC=(--zone="$ZONE" --project="$PROJECT")
TPU=(gcloud compute tpus tpu-vm)
QR=(gcloud compute tpus queued-resources)
ON_ALL=("${TPU[@]}" ssh "$NAME" "${LOC[@]}" --worker=all --quiet)

delete_vm() {
  local status=$?
  trap - EXIT
  if [[ $KEEP == 1 ]]; then
    echo "kept $NAME; delete it with:" >&2
    if [[ $QUEUED == 1 ]]; then
      echo "  $(quote_all "${QR[@]}" delete "$NAME" "${LOC[@]}" --force --quiet)" >&2
    else
      echo "  $(quote_all "${TPU[@]}" delete "$NAME" "${LOC[@]}" --quiet)" >&2
    fi
  elif [[ $QUEUED == 1 ]]; then
    run "${QR[@]}" delete "$NAME" "${LOC[@]}" --force --quiet || true
  else
    run "${TPU[@]}" delete "$NAME" "${LOC[@]}" --quiet || true
  fi
  exit "$status"
}

# 1. The machine.
spot=()
[[ $SPOT == 1 ]] && spot=(--spot)
if [[ $QUEUED == 1 ]]; then
  run "${QR[@]}" create "$NAME" --node-id="$NAME" "${LOC[@]}" --accelerator-type="$TYPE" \
    --runtime-version="$VERSION" "${spot[@]}"
else
  run "${TPU[@]}" create "$NAME" "${LOC[@]}" --accelerator-type="$TYPE" --version="$VERSION" \
    "${spot[@]}"
fi
trap delete_vm EXIT
trap 'exit 130' INT TERM

if [[ $QUEUED == 1 ]]; then
  describe=("${QR[@]}" describe "$NAME" "${LOC[@]}" --format='value(state.state)')
  if [[ $DRY_RUN == 1 ]]; then
    run "${describe[@]}"
  else
    deadline=$((SECONDS + QUEUE_TIMEOUT * 60))
    while true; do
      state=$(run "${describe[@]}")
      echo "queued resource $NAME: $state" >&2
      case $state in
        ACTIVE) break ;;
        FAILED | SUSPENDED) echo "error: queued resource $NAME is $state" >&2; exit 1 ;;
      esac
      if ((SECONDS > deadline)); then
        echo "error: $NAME not ACTIVE after $QUEUE_TIMEOUT minutes" >&2
        exit 1
      fi
      sleep 30
    done
  fi
fi

# 2. The code, on every worker.
dir=$(quote "$REMOTE_DIR")
if [[ -n $GIT_URL ]]; then
  branch=()
  [[ -n $REF ]] && branch=(--branch "$REF")
  fetch="rm -rf $dir && git clone --depth 1 $(quote_all "${branch[@]}" "$GIT_URL") $dir"
else
  tarball="${TMPDIR:-/tmp}/lenrl-$NAME.tar.gz"
  run tar -czf "$tarball" -C "$REPO" --exclude=.git --exclude=runs --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.venv --exclude=.pytest_cache .
  run "${TPU[@]}" scp "$tarball" "$NAME:lenrl.tar.gz" "${LOC[@]}" --worker=all --quiet
  fetch="rm -rf $dir && mkdir -p $dir && tar -xzf lenrl.tar.gz -C $dir"
fi
run "${ON_ALL[@]}" --command="set -e; $fetch && cd $dir && $(quote "$PY") -m pip install -q -e \".[tpu]\""

# 3. The run, on every worker at once; their output streams here.
train=$(quote_all env LENRL_DISTRIBUTED=auto "$PY" -m lenrl.launch --config="$CONFIG" \
  --workdir="$WORKDIR" "${EXTRA[@]}")
run "${ON_ALL[@]}" --command="set -o pipefail; cd $dir && $train 2>&1 | tee ~/lenrl-train.log"

# 4. delete_vm runs on exit.
