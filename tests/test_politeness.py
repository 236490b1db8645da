"""Politeness toward hosts across the fleet: per-host limits, rates and
Retry-After shared by every worker, at no round trip per file. Real
workers, a real Redis, real local servers."""

import signal
import threading
import time
from contextlib import contextmanager

import pytest
import redis

from downloader.config import Settings
from downloader.runs import Runs
from jobqueue import Queue, Worker
from tests.conftest import FAST_TIMING, recording_client, wait_for
from tests.forwarder import Forwarder
from tests.http_server import MisbehavingServer
from tests.test_downloader_cli import popen
from tests.test_downloader_e2e import downloader, run_id_of

LEASE = {"DOWNLOADER_HOST_LEASE": "1.5"}  # permits and throttles travel within half a second


@contextmanager
def fleet(redis_server, tmp_path, queue, count, slots):
    """``count`` `downloader work` processes on ``queue``, stopped (warm) at the end, and the server with them."""
    workers = [popen(redis_server, "work", "--quiet", "--queue", queue, "-c", str(slots), "--dir", str(tmp_path),
                     **LEASE) for _ in range(count)]
    try:
        yield workers
    finally:
        for w in workers:
            w.terminate()
            w.wait()


def links(tmp_path, urls):
    path = tmp_path / "links.txt"
    path.write_text("\n".join(urls) + "\n")
    return str(path)


def test_a_host_that_allows_two_requests_never_sees_a_third_from_three_workers(redis_server, r, tmp_path):
    web = MisbehavingServer()
    urls = [f"{web.url}/capped/{n}.png" for n in range(90)]
    try:
        with fleet(redis_server, tmp_path, "polite", 3, 16):
            config = tmp_path / "polite.toml"                          # per host in the config file: this one allows 2
            config.write_text(f'hosts = {{ "127.0.0.1:{web.url.rsplit(":", 1)[1]}" = {{ per_host = 2 }} }}\n')
            out = downloader(redis_server, "fetch", "--links", links(tmp_path, urls), "--queue", "polite", "--config",
                             str(config), "--dir", str(tmp_path / "dl"), timeout=120, **LEASE)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "done          90" in out.stdout and "failed         0" in out.stdout
            assert web.most_in_flight <= 2 and web.refused == 0        # never over its limit: never refused
            assert len(list((tmp_path / "dl").iterdir())) == 90
    finally:
        web.stop()


def test_a_retry_after_from_a_host_pauses_it_for_every_worker_and_status_says_so(redis_server, r, tmp_path):
    web = MisbehavingServer()
    urls = [f"{web.url}/pause-once/{n}.png" for n in range(40)]
    run_id, _ = Runs(r).create(urls, "test", Settings(queue="pause", dir=str(tmp_path)))
    try:
        with fleet(redis_server, tmp_path, "pause", 2, 4):
            wait_for(lambda: web.paused_at is not None, message="the host asked for a pause")
            status = downloader(redis_server, "status", run_id).stdout
            assert f"Host 127.0.0.1:{web.url.rsplit(':', 1)[1]} asked for a pause (Retry-After)" in status, status
            wait_for(lambda: Runs(r).progress(run_id).complete, timeout=60, message="the run complete")
            during = [t for t, _ in web.starts if web.paused_at + 0.8 < t < web.paused_at + 2.7]
            assert during == []                    # once the word went round, nobody called it until the time it named
            assert Runs(r).progress(run_id).done == 40 and Runs(r).progress(run_id).failed == 0
    finally:
        web.stop()


def test_a_pause_asked_for_after_the_permit_was_taken_stops_the_request_before_it_goes_out(r, tmp_path):
    """A worker takes a host's permit, then (before its request goes out) the
    word arrives that the host asked every client for a pause: the request is
    not sent, and the download is postponed to the time the host named."""
    from concurrent.futures import Future
    from downloader.politeness import HostGate
    from downloader.transfer import Folder, Limits, Transfer, part_for
    from jobqueue import Postpone
    web = MisbehavingServer()
    host = f"127.0.0.1:{web.url.rsplit(':', 1)[1]}"
    gate, outcome = HostGate(r), Future()
    try:
        gate.enter(host)                 # the permit
        gate.throttle(host, 3)           # the word (here: this worker's own; from another, its lease renewal)
        folder = Folder(str(tmp_path))
        transfer = Transfer(f"{web.url}/img/late.png", part_for(folder, "late.png", None, 0, Limits()), Limits(),
                            lambda size, error: outcome.set_result(error), before=lambda: gate.still_open(host))
        transfer.start()
        error = outcome.result(timeout=10)
        assert isinstance(error, Postpone) and 2 < error.delay <= 3
        assert web.hits == {}            # no request reached the host
    finally:
        web.stop()


def test_host_keys_of_another_type_are_moved_away_and_the_host_is_still_downloaded(redis_server, r, tmp_path):
    """A host's keys and the throttled index, written by hand with other types:
    the worker renames each to '<key>:quarantined' (kept to inspect), says so,
    and downloads from the host as if they had never been there."""
    web = MisbehavingServer()
    host = f"127.0.0.1:{web.url.rsplit(':', 1)[1]}"
    poisoned = {f"downloader:host:{host}": "a", f"downloader:host:{host}:held": "b",
                f"downloader:host:{host}:leases": "c", "downloader:hosts:throttled": "d"}
    for key, value in poisoned.items():
        r.set(key, value)
    urls = [f"{web.url}/img/h{n}.png" for n in range(6)] + [f"{web.url}/pause-once/h.png"]  # (a 429: the throttle)
    try:
        run_id, _ = Runs(r).create(urls, "test", Settings(queue="hostkeys", dir=str(tmp_path)))
        with fleet(redis_server, tmp_path, "hostkeys", 1, 4) as (worker,):
            wait_for(lambda: Runs(r).progress(run_id).done == 7, timeout=30, message="every file, the paused one too")
        said = worker.stderr.read()
        assert "Traceback" not in said, said
        assert {key: r.get(key + ":quarantined") for key in poisoned} == {k: v.encode() for k, v in poisoned.items()}
        for key in poisoned:
            assert f"Host key {key} held another type of value" in said
    finally:
        web.stop()


def test_a_burst_worker_waits_for_a_paused_download_and_ctrl_c_quits_the_wait(redis_server, r, tmp_path):
    """`work --burst` quits once nothing is left to download: a download that
    waits out a host's Retry-After (3 s) is left, so the worker waits for it."""
    web = MisbehavingServer()
    try:
        urls = [f"{web.url}/img/b{n}.png" for n in range(3)] + [f"{web.url}/pause-once/b.png"]
        run_id, _ = Runs(r).create(urls, "test", Settings(queue="burst", dir=str(tmp_path)))
        out = downloader(redis_server, "work", "--burst", "--queue", "burst", "--dir", str(tmp_path), timeout=60)
        assert out.returncode == 0, out.stderr
        assert "1 download(s) wait out a pause before a retry" in out.stderr
        assert Runs(r).progress(run_id).done == 4
        web.paused_at = None                                       # the host asks for a pause again
        again, _ = Runs(r).create([f"{web.url}/pause-once/c.png"], "test", Settings(queue="burst", dir=str(tmp_path)))
        waiting = popen(redis_server, "work", "--burst", "--queue", "burst", "--dir", str(tmp_path))
        said: list[str] = []
        threading.Thread(target=lambda: said.extend(waiting.stderr), daemon=True).start()
        wait_for(lambda: any("waiting for it" in line for line in said), message="the worker waiting")
        waiting.send_signal(signal.SIGINT)
        assert waiting.wait(timeout=2) == 0                        # long before the download was due
        assert Runs(r).progress(again).done == 0
    finally:
        web.stop()


def test_a_burst_worker_waits_for_redis_lost_while_it_waited_for_a_paused_download(own_redis, tmp_path):
    """Redis is gone when the paused download falls due (killed during the
    wait, back 2 s later): the next burst waits for it as a worker's start
    does (P71), takes the download, and the command ends as usual."""
    web = MisbehavingServer()
    r = own_redis.client()
    try:
        run_id, _ = Runs(r).create([f"{web.url}/pause-once/lost.png"], "test",
                                   Settings(queue="lost", dir=str(tmp_path)))
        waiting = popen(own_redis, "work", "--burst", "--queue", "lost", "--dir", str(tmp_path))
        said: list[str] = []
        threading.Thread(target=lambda: said.extend(waiting.stderr), daemon=True).start()
        wait_for(lambda: any("waiting for it" in line for line in said), message="the worker waiting")
        own_redis.kill()
        time.sleep(5)                                              # past the pause: due while Redis is gone
        own_redis.start()
        assert waiting.wait(timeout=60) == 0, "".join(said)
        assert any("cannot reach Redis" in line and "trying again" in line for line in said), "".join(said)
        assert Runs(r).progress(run_id).done == 1
    finally:
        web.stop()


def test_a_burst_worker_that_loses_redis_between_bursts_starts_the_next_one(redis_server, r):
    """The check for paused downloads after a burst meets a cut link: the next
    burst starts (its start waits for Redis, P71) instead of the command failing."""
    from downloader.cli.serving import burst_until_nothing_is_left
    relay = Forwarder(redis_server.port)
    bursts: list[Worker] = []

    def worker() -> Worker:
        if not bursts:
            relay.cut()                                            # lost after the first burst's start
        else:
            relay.heal()
        bursts.append(Worker([Queue("between", connection=r)], connection=r, timing=FAST_TIMING))
        return bursts[-1]

    try:
        burst_until_nothing_is_left(worker, [Queue("between", connection=redis.Redis.from_url(relay.url()))])
        assert len(bursts) == 2
    finally:
        relay.close()


def test_a_rate_spreads_request_starts_over_the_fleet(redis_server, r, tmp_path):
    web = MisbehavingServer()
    urls = [f"{web.url}/img/rate{n}.png" for n in range(24)]
    try:
        with fleet(redis_server, tmp_path, "rated", 2, 8):
            out = downloader(redis_server, "fetch", "--links", links(tmp_path, urls), "--queue", "rated", "--rate", "4",
                             "--per-host", "3", "--dir", str(tmp_path / "dl"), timeout=120)
            assert out.returncode == 0, out.stdout + out.stderr
            host = f"downloader:host:127.0.0.1:{web.url.rsplit(':', 1)[1]}"
            assert r.hmget(host, "limit", "rate") == [b"3", b"4.0"]      # the flags, for the whole fleet
            starts = sorted(t for t, _ in web.starts)
            assert starts[-1] - starts[0] >= 4.0                     # 24 starts at 4 a second, after a burst of 4
            assert all(sum(1 for t in starts if s <= t < s + 1.0) <= 4 + 4 for s in starts)
    finally:
        web.stop()


def test_an_unthrottled_host_costs_no_round_trip_per_file(redis_server, r, tmp_path):
    web = MisbehavingServer()
    client, senders = recording_client(redis_server.url)
    try:
        urls = [f"{web.url}/img/many{n}.png" for n in range(200)]
        run_id, _ = Runs(r).create(urls, "test", Settings(queue="cheap", dir=str(tmp_path)))
        worker = Worker([Queue("cheap", connection=client)], connection=client, concurrency=16, timing=FAST_TIMING,
                        allowed_modules=["downloader."])
        worker.work(burst=True)
        assert Runs(r).progress(run_id).done == 200
        # a lease a batch of 8 permits, and the run's options once
        assert len([name for name in senders if name.startswith("slot-")]) <= 4 + 1
    finally:
        web.stop()
        client.close()


def test_a_dead_workers_permits_come_back_after_its_lease(redis_server, r, tmp_path):
    """Three permits: a worker killed holding two, a live one holding the third
    on a long download. The dead one's come back within its lease; nothing
    else would free them before the long download ends."""
    from downloader import politeness
    web = MisbehavingServer(slow_delay=0.05, slow_size=760)    # 1.4 MB in 4 KiB steps: about 18 s a file
    politeness.register(r, {f"127.0.0.1:{web.url.rsplit(':', 1)[1]}": (3, 0.0)})
    runs = Runs(r)
    runs.create([f"{web.url}/slow/a{n}.png" for n in range(2)], "test", Settings(queue="lapse", dir=str(tmp_path)))
    dead = popen(redis_server, "work", "--quiet", "--queue", "lapse", "-c", "2", "--dir", str(tmp_path), **LEASE)
    live = quick = None
    try:
        wait_for(lambda: len(list(tmp_path.glob("*.part"))) == 2, message="two permits in use")
        runs.create([f"{web.url}/slow/b.png"], "test", Settings(queue="lapse-long", dir=str(tmp_path)))
        live = popen(redis_server, "work", "--quiet", "--queue", "lapse-long", "-c", "1", "--dir", str(tmp_path),
                     **LEASE)
        wait_for(lambda: len(list(tmp_path.glob("*.part"))) == 3, message="the third permit in use")
        dead.kill()
        dead.wait()
        run_id, _ = runs.create([f"{web.url}/img/after{n}.png" for n in range(4)], "test",
                                Settings(queue="lapse-quick", dir=str(tmp_path)))
        quick = popen(redis_server, "work", "--quiet", "--queue", "lapse-quick", "-c", "4", "--dir", str(tmp_path),
                      **LEASE)
        wait_for(lambda: runs.progress(run_id).done == 4, timeout=12,
                 message="the dead worker's permits back (its lease lapsed) while the long download goes on")
        assert len(list(tmp_path.glob("b-*.part"))) == 1            # the live worker still holds its permit
    finally:
        for proc in (dead, live, quick):
            if proc is not None and proc.poll() is None:
                proc.kill()                                       # (a warm stop would wait for the long one)
                proc.wait()
        web.stop()


def test_limit_rate_caps_one_workers_bandwidth(redis_server, r, tmp_path):
    web = MisbehavingServer(slow_delay=0, slow_size=760)        # 1.4 MB, as fast as loopback goes
    try:
        run_id, _ = Runs(r).create([f"{web.url}/slow/{n}.png" for n in range(2)], "test",
                                   Settings(queue="capped-bw", dir=str(tmp_path)))
        start = time.monotonic()
        out = downloader(redis_server, "work", "--burst", "--quiet", "--queue", "capped-bw", "-c", "2",
                         "--limit-rate", "1M", "--dir", str(tmp_path), timeout=60)
        assert out.returncode == 0 and Runs(r).progress(run_id).done == 2
        assert time.monotonic() - start >= 2.0                   # 2.8 MB at 1 MiB/s in all: not in a flash
        bad = downloader(redis_server, "work", "--burst", "--limit-rate", "fast", "--queue", "capped-bw")
        assert bad.returncode == 2 and "is not a rate" in bad.stderr
    finally:
        web.stop()
