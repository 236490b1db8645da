"""Named mutations: each one breaks one promise of tests/PROMISES.md on
purpose, and the tests that guard the promise must then fail.

    ./run.sh mutants                  every mutation in tests/mutations.toml
    ./run.sh mutants NAME ...         only these
    ./run.sh mutants -j 2 --all-tests each mutant against the whole suite

Each mutation replaces one exact piece of text (found exactly once, else the
mutation is stale and the run stops) in a scratch copy of the repository,
runs its tests there, and puts the text back. A mutant that passes its tests
survived: the promise is not guarded. Exit code 0 when every mutant was
killed, 1 when any survived, 2 when the table is stale or the unmutated
tests fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "tests" / "mutations.toml"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    find: str
    replace: str
    promise: str
    tests: tuple[str, ...]


def load(path: Path = TABLE) -> list[Mutation]:
    rows = tomllib.loads(path.read_text())["mutation"]
    mutations = [Mutation(r["name"], r["file"], r["find"], r["replace"], r["promise"], tuple(r["tests"])) for r in rows]
    names = [m.name for m in mutations]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise SystemExit(f"mutants: names used twice in {path}: {', '.join(sorted(duplicated))}")
    return mutations


def check_fresh(mutations: list[Mutation]) -> list[str]:
    """Each mutation's text must stand exactly once in its file, or it no longer mutates what it says."""
    problems = []
    for m in mutations:
        count = (ROOT / m.file).read_text().count(m.find)
        if count != 1:
            problems.append(f"{m.name}: its text stands {count} times in {m.file} (must be once); update the table")
    return problems


def scratch_copy(target: Path) -> Path:
    """The files git knows of (tracked, and new ones not ignored), as they are in the work tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def run_tests(copy: Path, tests: tuple[str, ...], workers: int) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    # -x stops at the first failure, but under xdist a stop reads as "interrupted" (exit 2), not "failed"
    spread = ["-x"] if workers == 1 else ["-n", str(workers)]
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *spread, *tests]
    proc = subprocess.run(args, cwd=copy, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run.sh mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only these mutations")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutants tested at once [2]")
    parser.add_argument("--all-tests", action="store_true", help="run the whole suite against every mutant")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)

    mutations = load()
    if args.names:
        unknown = set(args.names) - {m.name for m in mutations}
        if unknown:
            print(f"mutants: no mutation named {', '.join(sorted(unknown))} (see --list)", file=sys.stderr)
            return 2
        mutations = [m for m in mutations if m.name in args.names]
    if args.list:
        for m in mutations:
            print(f"{m.name:<34} {m.file:<36} {m.promise}")
        return 0
    stale = check_fresh(mutations)
    if stale:
        print("\n".join(stale), file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copies = [scratch_copy(Path(tmp) / f"copy{i}") for i in range(max(1, args.jobs))]
        free = list(copies)
        lock = threading.Lock()

        def selected(m: Mutation) -> tuple[str, ...]:
            return ("tests",) if args.all_tests else m.tests

        every_test = tuple(sorted({t for m in mutations for t in selected(m)}))
        code, output = run_tests(copies[0], every_test, workers=4)
        if code != 0:
            print(output[-3000:], "\nmutants: the unmutated tests fail; fix them first", file=sys.stderr)
            return 2

        def attempt(m: Mutation) -> tuple[Mutation, int, float, str]:
            with lock:
                copy = free.pop()
            path = copy / m.file
            original = path.read_text()
            start = time.monotonic()
            try:
                path.write_text(original.replace(m.find, m.replace))
                code, output = run_tests(copy, selected(m), workers=1 if not args.all_tests else 2)
            finally:
                path.write_text(original)
                with lock:
                    free.append(copy)
            return m, code, time.monotonic() - start, output

        # pytest's exit code: 1 = a test failed (killed); 0 = all passed (survived); anything else
        # (a collection error, no test selected) says nothing about the promise
        survivors, errors = [], []
        print(f"{'MUTATION':<34} {'RESULT':<9} {'SECONDS':>7}  PROMISE")
        with ThreadPoolExecutor(max_workers=len(copies)) as pool:
            for m, code, seconds, output in pool.map(attempt, mutations):
                result = {0: "SURVIVED", 1: "killed"}.get(code, f"ERROR {code}")
                print(f"{m.name:<34} {result:<9} {seconds:>7.1f}  {m.promise}", flush=True)
                if code == 0:
                    survivors.append(m)
                elif code != 1:
                    errors.append((m, output))
    killed = len(mutations) - len(survivors) - len(errors)
    print(f"\n{killed} of {len(mutations)} mutants killed, {len(survivors)} survived, {len(errors)} errors")
    for m in survivors:
        print(f"  survived: {m.name} ({m.file}): {m.promise}; its tests: {' '.join(m.tests)}")
    for m, output in errors:
        print(f"  error: {m.name}: pytest could not judge it:\n{output[-1500:]}")
    return 2 if errors else 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
