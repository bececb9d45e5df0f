#!/usr/bin/env bash
# Create .venv and install the project with its dev extras, pinned to constraints.txt (the
# versions the tests ran with). torch 2.13.0 goes in first so that pip never resolves a CUDA
# build on a CPU box; on a CUDA machine set TORCH_INDEX (e.g.
# TORCH_INDEX=https://download.pytorch.org/whl/cu128) to get the CUDA build of the same version.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
fi
python -m pip install -q -e ".[dev]" -c constraints.txt
python -c "import torch, bittensor, transformers; print('setup ok: torch', torch.__version__, 'transformers', transformers.__version__)"
