#!/bin/bash
# On the lent accelerator, from the repository root, after `python -m benchmarks.device_check.bundle`
# here and with benchmarks/device_check/{data,wheels} carried:
#   bash benchmarks/device_check/run.sh --out "$OUT"        (any further flags go to the check)
# Through this workplace's device tool (a call sends the session's checkout, so the ignored bundle
# must be named in carry): run(command='bash benchmarks/device_check/run.sh --out "$OUT"',
# carry=['benchmarks/device_check/data', 'benchmarks/device_check/wheels'], timeout_s=600).
# Installs the bundled wheels into /tmp/device_check_site (no index, no dependencies: the device
# image has the rest), puts it and the repository on PYTHONPATH, and runs the check.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SITE=/tmp/device_check_site
WHEELS="$ROOT/benchmarks/device_check/wheels"
PYTHON="${PYTHON:-python3}"
if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  echo "error: no wheels in $WHEELS; run python -m benchmarks.device_check.bundle here first and carry benchmarks/device_check/wheels" >&2
  exit 1
fi
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$WHEELS"/*.whl
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
cd "$ROOT"
exec "$PYTHON" -m benchmarks.device_check "$@"
