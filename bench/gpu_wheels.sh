#!/usr/bin/env bash
# Download, here, the wheels that bench/gpu_check.sh installs on a GPU machine without a package index.
#
# That machine (see bench/RESULTS.md) runs CPython 3.12 on x86-64 with torch, torchvision, numpy,
# pillow, pyyaml, tqdm, jinja2, markupsafe, httpx, anyio, h11, idna, click, typing-extensions, packaging,
# narwhals, annotated-doc, timm, safetensors, scipy and tensorboard already installed. What the dashboard, the
# worker and the trainer import besides, found by importing backend.cli.main, backend.app, backend.worker.loop,
# backend.migrate and trainer.loop.run and listing the distributions of every loaded module:
#   pydantic pydantic-core pydantic-settings typing-inspection annotated-types python-dotenv
#   fastapi starlette fastapi-offline sse-starlette uvicorn sqlalchemy alembic mako plotly
#   opentelemetry-api (fastapi's telemetry imports it), orjson (the metric columns' serializer),
#   nvidia-ml-py (the worker's list of GPUs; each epoch's GPU utilization, on CUDA)
# and, newer than the machine may hold (pydantic and anyio need typing-extensions >= 4.16,
# sse-starlette anyio >= 4.7): typing-extensions anyio.
# Left out: greenlet (SQLAlchemy 2.1 needs it only for asyncio), httpx-sse (only `tricklab runs watch`),
# psycopg (the check runs on SQLite), statsmodels (already there). Each is pinned to the version in
# this project's environment, so the GPU machine runs what the test suite ran.
#
#   bench/gpu_wheels.sh [DEST]     # DEST defaults to .whl (git-ignored); prints the total size
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.whl}
python=${PYTHON:-python}
packages=(
    pydantic pydantic-core pydantic-settings typing-inspection annotated-types python-dotenv
    fastapi starlette fastapi-offline sse-starlette uvicorn sqlalchemy alembic mako plotly
    opentelemetry-api orjson nvidia-ml-py typing-extensions anyio
)
pins=()
for name in "${packages[@]}"; do
    version=$("$python" -c 'import importlib.metadata, sys; print(importlib.metadata.version(sys.argv[1]))' "$name")
    pins+=("$name==$version")
done
rm -rf "$dest"
mkdir -p "$dest"
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$dest" "${pins[@]}"
ls -1 "$dest"
total=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
echo "$(ls "$dest"/*.whl | wc -l) wheels, $((total / 1000000)) MB in $dest"
if ((total > 40000000)); then
    echo "over the 40 MB a device call may carry beside the repository" >&2
    exit 1
fi
