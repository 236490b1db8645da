"""The downloader on a real 3-master Redis Cluster with three shards: runs
spread over the masters, one worker process takes from every shard, and a
run's progress reads the same from any node."""

import functools
import json
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from downloader.naming import file_name
from downloader.runs import Runs
from tests.conftest import FAST, ROOT
from tests.http_server import png


@pytest.fixture
def files(tmp_path):
    """A plain file server over a folder of PNGs: what a saved file must equal."""
    folder = tmp_path / "source"
    folder.mkdir()
    for i in range(40):
        (folder / f"img{i}.png").write_bytes(png("x" * i, 32 + i))
    handler = functools.partial(type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
                                directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def downloader(node: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, **FAST, "PYTHONPATH": str(ROOT), "DOWNLOADER_REDIS_URL": node, "DOWNLOADER_SHARDS": "3"}
    return subprocess.run([sys.executable, "-m", "downloader", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_runs_spread_over_the_masters_and_any_node_reads_their_progress(cluster_servers, files, tmp_path):
    folder, base = files
    first, last = (f"redis://127.0.0.1:{port}" for port in (cluster_servers.ports[0], cluster_servers.ports[-1]))
    cluster = cluster_servers.client()
    runs = Runs.sharded(cluster, 3)
    assert len({cluster.get_node_from_key(shard.keys.prefix).name for shard in runs.shards}) == 3  # one per master
    made: list[tuple[str, list[str]]] = []

    def master_of(run_id: str) -> str:
        return cluster.get_node_from_key(runs.shard(run_id).keys.prefix).name

    for n in range(12):  # until the runs lie on two masters at least (each run's shard follows from its id)
        links = tmp_path / f"links{n}.txt"
        names = [f"img{4 * n + k}.png" for k in range(4)]
        links.write_text("".join(f"{base}/{name}\n" for name in names) + (f"{base}/missing.png\n" if n == 0 else ""))
        out = downloader(first, "fetch", "--links", str(links), "--no-wait", "--dir", str(tmp_path / f"out{n}"),
                         "--json")
        assert out.returncode == 0, out.stderr
        made.append((json.loads(out.stdout)["runs"][0]["run_id"], names))
        if len({master_of(run_id) for run_id, _ in made}) >= 2:
            break
    worker = downloader(last, "work", "--burst", "--concurrency", "8", timeout=120)
    assert worker.returncode == 0, worker.stderr
    lanes = ", ".join(f"{shard.jobs.keys.prefix}downloads" for shard in runs.shards)
    assert f"Listening on {lanes}" in worker.stderr  # a lane each
    masters = set()
    for n, (run_id, names) in enumerate(made):
        status = downloader(last if n % 2 else first, "status", run_id, "--json")   # any node, the same answer
        shown = json.loads(status.stdout)
        assert (shown["total"], shown["done"], shown["failed"]) == (len(names) + (n == 0), len(names), n == 0)
        if n == 0:
            assert list(shown["failures"]) == [f"{base}/missing.png"]
        for name in names:
            saved = tmp_path / f"out{n}" / file_name(f"{base}/{name}")
            assert saved.read_bytes() == (folder / name).read_bytes()
        slots = {cluster.keyslot(k) for k in cluster.keys(f"*{run_id}*", target_nodes=cluster.ALL_NODES)}
        assert len(slots) == 1   # the run's keys and its jobs: one slot, its shard's
        masters.add(master_of(run_id))
    assert len(masters) >= 2
    books = [k.decode() for k in cluster.keys("*host*", target_nodes=cluster.ALL_NODES)]
    assert books and all(k.startswith("{downloader}:host") for k in books), books   # one fleet-wide set of books
    listed = downloader(first, "runs").stdout
    assert all(run_id in listed for run_id, _ in made)
    failing_run = made[0][0]
    again = downloader(last, "retry", failing_run, "--no-wait", "--json")   # back on its queue, in its shard
    assert again.returncode == 0 and json.loads(again.stdout)["runs"][0]["failed"] == 0, again.stderr
    assert runs.shard(failing_run).queue("downloads").count == 1
    gone = downloader(first, "delete", failing_run)
    assert gone.returncode == 0, gone.stderr
    assert cluster.keys(f"*{failing_run}:*", target_nodes=cluster.ALL_NODES) == []      # its records,
    assert cluster.keys(f"*:job:dl-{failing_run}-*", target_nodes=cluster.ALL_NODES) == []  # its jobs
    assert runs.shard(failing_run).queue("downloads").count == 0
    cluster.close()


def test_the_archive_is_the_union_of_the_shards(cluster_servers, tmp_path):
    """A gallery run records its items in its own shard's archive; a later
    fetch leaves out what any shard holds; `archive count` and `forget` see
    every shard."""
    from downloader.demo_server import DemoServer
    demo = DemoServer(images=6).start()
    node = f"redis://127.0.0.1:{cluster_servers.ports[1]}"
    cluster = cluster_servers.client()
    runs = Runs.sharded(cluster, 3)
    gallery = ["fetch", "--client-id", "demo", "--api-url", demo.url, "--no-wait", "--json"]
    try:
        made = downloader(node, *gallery, "--dir", str(tmp_path / "a"))
        assert made.returncode == 0, made.stderr
        run_id = json.loads(made.stdout)["runs"][0]["run_id"]   # its items go to its shard, not home
        assert downloader(node, "work", "--burst").returncode == 0
        assert json.loads(downloader(node, "status", run_id, "--json").stdout)["done"] == 6
        assert "6 item(s)" in downloader(node, "archive", "count").stdout
        again = downloader(node, *gallery[:-2], "--dir", str(tmp_path / "b"))
        assert again.returncode == 0 and "gave nothing new to download (6 already in archive" in again.stdout, \
            again.stdout + again.stderr
        assert downloader(node, "archive", "forget").returncode == 0
        fresh = downloader(node, *gallery, "--dir", str(tmp_path / "c"))
        assert json.loads(fresh.stdout)["runs"][0]["total"] == 6
    finally:
        demo.stop()
        cluster.close()
