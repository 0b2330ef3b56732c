#!/usr/bin/env bash
# One session on a lent GPU machine: the test suite, then `python -m benchmarks --quick`, every
# output under $OUT (at most 8 files come back from there). Run from the repository root:
#
#     bash benchmarks/gpu_session.sh
#
# beartype is not installed on those machines: carry its wheel in .whl/ (see the device tool's
# README); it is installed into /tmp/site here. The benchmark cases run in groups, most important
# first, each group writing its figures into $OUT/gpu.quick.json, so a time limit keeps what ran.
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import jax, equinox, optax; print(jax.__version__, equinox.__version__, optax.__version__, jax.devices())"
} >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

# the suite: 8 workers (the GPU's memory is shared; nothing is preallocated)
timeout "${TEST_SECONDS:-180}" python3 -m pytest -q -p no:cacheprovider -n 8 --durations=15 \
    2>&1 | tee "$OUT/tests.txt" | tail -30

bench() {
    timeout "$1" python3 -m benchmarks --quick --out "$OUT" --cases "${@:2}" 2>&1 |
        tee -a "$OUT/bench.txt" | grep -E "PASS|FAIL|took|error|Error" | tail -40
}
bench "${BENCH1_SECONDS:-150}" accelerator
bench "${BENCH2_SECONDS:-100}" lecture sizes recompiles least_squares
bench "${BENCH3_SECONDS:-80}" first_result sklearn_tables ensemble
bench "${BENCH4_SECONDS:-40}" process scaling efficiency compile
ls -la "$OUT"
