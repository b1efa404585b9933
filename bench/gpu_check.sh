#!/usr/bin/env bash
# The GPU path end to end in one call of at most 9 minutes on one H200: see bench/gpu_check.py for
# the steps and bench/RESULTS.md for how to run it on a GPU machine without a package index.
#
#   bench/gpu_check.sh            # on the GPU machine: installs .whl/*.whl (bench/gpu_wheels.sh, run
#                                 # beforehand where an index is reachable) into a temporary folder
#                                 # on PYTHONPATH, uses the machine's own torch, writes to $OUT
#   bench/gpu_check.sh --smoke    # any machine, this environment: every step at toy size on the CPU
#
# Writes $OUT/gpu_check.log (every step with its seconds), $OUT/gpu_check.json (one summary) and the
# server's and workers' logs. OUT defaults to ./gpu-check-out.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$PWD/gpu-check-out}
mkdir -p "$out"
python=${PYTHON:-python3}
started=$(date +%s)
if [[ ${1:-} == --smoke ]]; then
    shift
    export CUDA_VISIBLE_DEVICES=""
    set -- --smoke "$@"
else
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "no wheels in .whl: run bench/gpu_wheels.sh where a package index is reachable, and carry .whl" >&2
        exit 1
    fi
    # The carried wheels, installed for this check only: the folder goes when the script ends.
    site=$(mktemp -d /tmp/tricklab-site-XXXXXX)
    trap 'rm -rf "$site"' EXIT
    # --no-deps: the machine's own torch, numpy and pillow stay; the wheels are exactly what it lacks.
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    echo "wheels installed in $(($(date +%s) - started)) s" | tee -a "$out/gpu_check.log"
fi
export PYTHONPATH="$PWD:$PWD/client${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# nvidia-smi's numbering, which --device cuda:N and --gpus follow (see backend/placement.py).
export CUDA_DEVICE_ORDER=${CUDA_DEVICE_ORDER:-PCI_BUS_ID}
"$python" -m bench.gpu_check --out "$out" "$@"
