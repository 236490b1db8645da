"""A bounded soak: 1,000 jobs, 3 thread-slot workers (one behind a TCP relay),
and for SOAK_SECONDS (default 40) random SIGKILLs (the worker is replaced),
SIGSTOP/SIGCONT pauses and cuts of the relayed link, some past the heartbeat
TTL. No id ever stands twice across its queue, started and scheduled entries (sampled
throughout). Then everything heals and the invariants must hold: every job recorded
once as finished, its success's writes applied once, no id left queued,
started or scheduled, never more than 4 attempts at once in a -c 4 worker.
Runs more than once are allowed (at-least-once), recorded outcomes are not."""

import os
import random
import signal
import time

import pytest

from jobqueue import Queue
from tests import jobs
from tests.conftest import wait_for
from tests.forwarder import Forwarder
from tests.invariants import assert_each_id_once, assert_one_outcome_each, attempts, max_at_once

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "40"))


@pytest.mark.long
def test_soak_random_kills_pauses_and_cuts(redis_server, r, workers, tmp_path):
    seed = int(os.environ.get("SOAK_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    print(f"soak seed {seed} (SOAK_SEED={seed} repeats the faults' order)")
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    ids = [q.enqueue(jobs.tracked, str(log), f"j{i}", rng.uniform(0.05, 0.8)).id for i in range(1000)]
    link = Forwarder(redis_server.port)
    env = {"JOBQUEUE_MAX_ABANDONED": "1000"}
    urls = [redis_server.url, redis_server.url, link.url()]
    procs = [workers.start(url, "-c", "4", env=env) for url in urls]
    pids = {p.pid for p in procs}
    counts = {"kill": 0, "pause": 0, "cut": 0}
    end = time.monotonic() + SOAK_SECONDS
    try:
        while time.monotonic() < end and r.zcard(q.backend.keys.registry("finished", q.name)) < len(ids):
            time.sleep(rng.uniform(0.3, 1.0))
            assert_each_id_once(q)
            action, n = rng.choice(["kill", "pause", "cut"]), rng.randrange(3)
            counts[action] += 1
            if action == "kill":
                procs[n].send_signal(signal.SIGKILL)
                procs[n].wait()
                procs[n] = workers.start(urls[n], "-c", "4", env=env)
                pids.add(procs[n].pid)
            elif action == "pause":
                procs[n].send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(0.2, 3.0))
                procs[n].send_signal(signal.SIGCONT)
            else:
                link.cut()
                time.sleep(rng.uniform(0.1, 3.0))
                link.heal()
        wait_for(lambda: r.zcard(q.backend.keys.registry("finished", q.name)) == len(ids), timeout=90,
                 message="every job finished once the faults stopped")
        assert_one_outcome_each(q, ids)
        runs = attempts(log)
        assert {a.tag for a in runs} == {f"j{i}" for i in range(1000)}
        most = max_at_once(log, pids)
        assert max(most.values()) <= 4, (most, [line for line in log.read_text().splitlines()
                                              if str(max(most, key=most.get)) in line][-40:])
        print(f"soak: {counts}, {len(runs)} executions of {len(ids)} jobs, "
              f"{sum(1 for a in runs if a.how == 'AttemptSuperseded')} superseded attempts stopped")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
        link.close()
