#!/usr/bin/env bash
# What to run on a machine with a CUDA GPU, from the repository root: the tests marked
# gpu, then the population benchmark on cuda at K=16 and 64, in fp32 and in bf16.
# PYTHON picks the interpreter (default .venv/bin/python).
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(), torch.__version__)"
"$PYTHON" -m pytest -q -m gpu tests
for precision in fp32 bf16; do
  "$PYTHON" -m benchmarks.population --device cuda --sizes 16 64 --mixed-sizes --precision "$precision"
done
