#!/usr/bin/env bash
# Create .venv and install the project with its dev extras.
# torch 2.13.0 goes in first so that pip never resolves a CUDA build on a CPU box;
# on a CUDA machine set TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0") and an index URL of your choice.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
python -m pip install -q -e ".[dev]"
python -c "import torch, bittensor, transformers; print('setup ok: torch', torch.__version__, 'bittensor', bittensor.__version__ if hasattr(bittensor, '__version__') else '11.x')"
