"""The downloader as users run it: real processes, real Redis, real HTTP servers."""

import json
import os
import signal
import ssl
import subprocess
import sys
import time

import pytest
import trustme
from PIL import Image

from downloader.demo_server import DemoServer
from downloader.naming import file_name
from downloader.runs import Runs
from jobqueue import Queue
from tests.conftest import FAST, ROOT, wait_for
from tests.http_server import ForwardProxy, MisbehavingServer


def env_for(redis_server, **extra):
    return {**os.environ, **FAST, "PYTHONPATH": str(ROOT), "DOWNLOADER_REDIS_URL": redis_server.url,
            "DOWNLOADER_RETRY_INTERVALS": "[0.2]", **extra}


def downloader(redis_server, *args, input=None, timeout=120, **extra):
    """Run a downloader command; one that outlives ``timeout`` is killed with
    the local workers it started (its process group), and the test fails."""
    proc = subprocess.Popen([sys.executable, "-m", "downloader", *args], cwd=ROOT, env=env_for(redis_server, **extra),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def status_json(redis_server, run_id, directory):
    out = downloader(redis_server, "status", run_id, "--json", "--dir", str(directory))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def run_id_of(output):
    return next(line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("Run "))


def test_fetch_a_gallery_with_local_workers_then_skip_it_all(redis_server, r, tmp_path):
    demo = DemoServer(images=40).start()
    try:
        out = downloader(redis_server, "fetch", "--client-id", "demo", "--api-url", demo.url, "--workers", "2",
                         "--dir", str(tmp_path / "gallery"))
        assert out.returncode == 0, out.stdout + out.stderr
        files = sorted(p for p in (tmp_path / "gallery").rglob("*") if p.is_file())
        assert len(files) == 40 and not any(f.name.endswith(".part") for f in files)
        for f in files:
            Image.open(f).verify()
        assert "done          40" in out.stdout and "100%" in out.stderr
        again = downloader(redis_server, "fetch", "--client-id", "demo", "--api-url", demo.url, "--workers", "1",
                           "--dir", str(tmp_path / "gallery"), "--no-archive")
        assert again.returncode == 0 and "skipped       40" in again.stdout
        listing = downloader(redis_server, "runs")
        assert run_id_of(out.stdout) in listing.stdout and run_id_of(again.stdout) in listing.stdout
        archived = downloader(redis_server, "fetch", "--client-id", "demo", "--api-url", demo.url,
                              "--dir", str(tmp_path / "gallery"))
        assert archived.returncode == 0 and "gave nothing new to download (40 already in archive" in archived.stdout
    finally:
        demo.stop()


def test_mixed_links_end_in_the_right_state_and_retry_reruns_only_the_failed(redis_server, r, tmp_path):
    web = MisbehavingServer(slow_delay=0.02)
    folder = tmp_path / "inside" / "dl"
    links = {
        "ok": f"{web.url}/img/fine.png", "404": f"{web.url}/missing.png", "flaky": f"{web.url}/flaky/f.png",
        "limited": f"{web.url}/limited/l.png", "slow": f"{web.url}/slow/s.png", "big": f"{web.url}/big.png",
        "html": f"{web.url}/page.html", "fake": f"{web.url}/fake.png", "toggle": f"{web.url}/toggle.png",
        "traversal": f"{web.url}/..%2F..%2F..%2Fescape.png", "malformed": "htp:/nope",
    }
    links_file = tmp_path / "links.txt"
    links_file.write_text("# my links\n\n" + "\n".join(links.values()) + f"\n{links['ok']}\n")
    try:
        out = downloader(redis_server, "fetch", "--links", str(links_file), "--workers", "2", "--dir", str(folder),
                         DOWNLOADER_MAX_SIZE="1000000")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "10 download(s) enqueued" in out.stdout and "1 duplicate(s) dropped" in out.stdout
        assert "Skipped 1 line(s)" in out.stderr and "line 13: 'htp:/nope'" in out.stderr  # never enqueued
        run_id = run_id_of(out.stdout)
        state = status_json(redis_server, run_id, folder)
        reasons = state["failures"]
        assert (state["done"], state["failed"], state["total"]) == (5, 5, 10)
        assert "HTTP 404" in reasons[links["404"]] and "HTTP 404" in reasons[links["toggle"]]
        assert "too large" in reasons[links["big"]]
        assert "not an image" in reasons[links["html"]] and "not an image" in reasons[links["fake"]]
        assert links["malformed"] not in reasons
        for key in ("ok", "flaky", "limited", "slow", "traversal"):
            assert (folder / file_name(links[key])).is_file(), key
        assert sorted(p.name for p in tmp_path.iterdir()) == ["inside", "links.txt"]
        assert sorted(p.name for p in (tmp_path / "inside").iterdir()) == ["dl"]
        assert web.hits["/missing.png"] == 1  # permanent: no retry

        web.toggle_on = True
        hits_before = dict(web.hits)
        again = downloader(redis_server, "retry", run_id, "--workers", "1", "--dir", str(folder),
                           DOWNLOADER_MAX_SIZE="1000000")
        assert "5 failed download(s) re-enqueued" in again.stdout
        assert again.returncode == 1  # the truly broken ones fail again
        state = status_json(redis_server, run_id, folder)
        assert (state["done"], state["failed"]) == (6, 4) and links["toggle"] not in state["failures"]
        for path in ("/img/fine.png", "/flaky/f.png", "/slow/s.png"):
            assert web.hits[path] == hits_before[path]  # what succeeded was not fetched again
    finally:
        web.stop()


def test_worker_killed_mid_download_another_completes_the_file(redis_server, r, tmp_path):
    web = MisbehavingServer(slow_delay=0.005, slow_size=760)   # 1.4 MB: worth resuming
    url = f"{web.url}/slow/big.png"
    folder = tmp_path / "dl"
    final = folder / file_name(url)

    def parts():
        return list(folder.glob(file_name(url) + ".*.part")) if folder.exists() else []

    try:
        out = downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--dir", str(folder), input=url + "\n")
        run_id = run_id_of(out.stdout)
        first = subprocess.Popen([sys.executable, "-m", "downloader", "work", "--dir", str(folder)], cwd=ROOT,
                                 env=env_for(redis_server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: parts() and parts()[0].stat().st_size > 8192, message="download under way")
            killed_at = parts()[0].stat().st_size
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            first.kill()
        assert not final.exists()  # a partial file never stands under its final name
        second = subprocess.Popen([sys.executable, "-m", "downloader", "work", "--dir", str(folder)], cwd=ROOT,
                                  env=env_for(redis_server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            runs = Runs(r)
            wait_for(lambda: runs.progress(run_id).complete, timeout=60, message="run complete")
        finally:
            second.terminate()
            second.wait()
        assert final.read_bytes() == web.slow_body and parts() == []
        assert runs.progress(run_id).done == 1
        assert web.hits["/slow/big.png"] == 2  # the re-run resumed the same part: one more request
        assert len(web.ranges) == 1 and web.ranges[0][1] >= killed_at
    finally:
        web.stop()


@pytest.mark.parametrize("case", ["bad-client-id", "invalid-json", "unreachable"])
def test_source_errors_are_clear_and_enqueue_nothing(redis_server, r, tmp_path, case):
    demo = DemoServer(images=5, client_ids={"good"}).start()
    web = MisbehavingServer()
    api = {"bad-client-id": demo.url, "invalid-json": f"{web.url}/page.html?", "unreachable": "http://127.0.0.1:1"}[case]
    expected = {"bad-client-id": "refused client id 'wrong'", "invalid-json": "did not answer JSON",
                "unreachable": "cannot reach"}[case]
    try:
        out = downloader(redis_server, "fetch", "--client-id", "wrong", "--api-url", api, "--dir", str(tmp_path))
        assert out.returncode == 1 and expected in out.stderr and "Nothing was enqueued" in out.stderr
        assert "Traceback" not in out.stderr
        assert len(Queue("downloads", connection=r)) == 0
    finally:
        demo.stop()
        web.stop()


def test_progress_costs_the_same_few_commands_for_any_run_size(r):
    from downloader.config import Settings
    runs = Runs(r)
    small, _ = runs.create([f"http://h/{i}.png" for i in range(5)], "test", Settings(queue="q"))
    large, _ = runs.create([f"http://h/{i}.png" for i in range(3000)], "test", Settings(queue="q"))

    def commands(run_id):
        r.config_resetstat()
        runs.progress(run_id)
        stats = r.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if not k.startswith("cmdstat_config"))  # 7: config|resetstat

    assert commands(small) == commands(large) <= 6
    assert Queue("q", connection=r).count == 3005  # the large run went in chunks, every URL once
    assert runs.progress(large).total == 3000


def test_retry_with_url_reenqueues_only_that_failed_download(redis_server, r, tmp_path):
    from downloader.config import Settings
    runs = Runs(r)
    settings = Settings(queue="rq1", dir=str(tmp_path))
    run_id, urls = runs.create(["http://h/a.png", "http://h/b.png", "http://h/c.png"], "test", settings)
    Queue("rq1", connection=r).empty()  # as if the workers had taken them
    runs.mark(run_id, urls[0], "failed", reason="HTTP 404")
    runs.mark(run_id, urls[1], "failed", reason="HTTP 500")
    runs.mark(run_id, urls[2], "done", 10)
    out = downloader(redis_server, "retry", run_id, "--url", urls[1], "--no-wait", "--dir", str(tmp_path))
    assert out.returncode == 0 and "1 failed download(s) re-enqueued" in out.stdout
    queued = Queue("rq1", connection=r).get_jobs()
    assert [job.args[0] for job in queued] == [urls[1]]
    progress = runs.progress(run_id)
    assert (progress.failed, progress.done) == (1, 1) and list(runs.failures(run_id)) == [urls[0]]
    nothing = downloader(redis_server, "retry", run_id, "--url", urls[2], "--no-wait")
    assert nothing.returncode == 0 and "Nothing to retry" in nothing.stdout      # in the run, not failed
    typo = downloader(redis_server, "retry", run_id, "--url", "http://h/a.pgn", "--no-wait")
    assert typo.returncode == 1 and f"not URL(s) of run {run_id}" in typo.stderr
    assert "did you mean: http://h/a.png" in typo.stderr and Queue("rq1", connection=r).count == 1


def test_retry_never_puts_a_job_on_a_queue_where_it_already_stands(redis_server, r, tmp_path):
    from downloader.config import Settings
    runs = Runs(r)
    run_id, urls = runs.create(["http://h/a.png", "http://h/b.png"], "test", Settings(queue="rq2", dir=str(tmp_path)))
    queue = Queue("rq2", connection=r)
    ids = {job.args[0]: job.id for job in queue.get_jobs()}
    queue.empty()                                   # taken, failed, and their failure records expired
    for url in urls:
        runs.mark(run_id, url, "failed", reason="HTTP 503")
    queue.enqueue_many([Queue.prepare_data("downloader.download.download_link", (str(tmp_path), urls[0]),
                                           job_id=ids[urls[0]])])   # a stands in the queue again (`jobqueue requeue`)
    again = downloader(redis_server, "retry", run_id, "--no-wait")
    assert again.returncode == 0 and "2 failed download(s) re-enqueued" in again.stdout, again.stderr
    assert sorted(job.id for job in queue.get_jobs()) == sorted(ids.values())   # each once: a left as it was, b anew


def test_same_url_in_two_runs_at_once_never_shares_a_file(redis_server, r, tmp_path):
    web = MisbehavingServer(slow_delay=0.1, slow_size=160)
    url = f"{web.url}/slow/shared.png"
    folder = tmp_path / "dl"
    try:
        first = run_id_of(downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--dir", str(folder),
                                     input=url + "\n").stdout)
        second = run_id_of(downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--dir", str(folder),
                                      input=url + "\n").stdout)
        worker = subprocess.Popen([sys.executable, "-m", "downloader", "work", "-c", "2", "--dir", str(folder)],
                                  cwd=ROOT, env=env_for(redis_server), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: folder.exists() and len(list(folder.glob("*.part"))) == 2, message="two part files")
            runs = Runs(r)
            wait_for(lambda: runs.progress(first).complete and runs.progress(second).complete, timeout=60,
                     message="both runs complete")
        finally:
            worker.terminate()
            worker.wait()
        assert [p.name for p in folder.iterdir()] == [file_name(url)]
        assert (folder / file_name(url)).read_bytes() == web.slow_body
    finally:
        web.stop()


def test_a_download_that_fails_for_good_leaves_no_part_file(redis_server, r, tmp_path):
    web = MisbehavingServer(slow_delay=1.0)
    url = f"{web.url}/slow/stalls.png"
    folder = tmp_path / "dl"
    try:
        out = downloader(redis_server, "fetch", "--links", "-", "--workers", "1", "--dir", str(folder),
                         input=url + "\n", DOWNLOADER_RETRIES="0", DOWNLOADER_READ_TIMEOUT="0.3")
        assert out.returncode == 1 and "timed out" in out.stdout
        assert list(folder.iterdir()) == []  # the 4 KiB it had received are gone
    finally:
        web.stop()


def test_work_sweeps_abandoned_part_files_only(redis_server, tmp_path):
    folder = tmp_path / "dl"
    (folder / "An album").mkdir(parents=True)
    old, fresh, done = folder / "a-1234.png.0123456789.1.part", folder / "b-1234.png.0123456789.2.part", folder / "c.png"
    in_album, saved_as_part = folder / "An album" / "001-x.jpg.0123456789.3.meta", folder / "An album" / "notes.part"
    for path in (old, fresh, done, in_album, saved_as_part):
        path.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    for path in (old, done, in_album, saved_as_part):
        os.utime(path, (two_days_ago, two_days_ago))
    out = downloader(redis_server, "work", "--burst", "--dir", str(folder), "--queue", "sweep-test")
    assert out.returncode == 0, out.stderr
    assert "Removed 2 abandoned .part file(s)" in out.stderr
    assert not old.exists() and not in_album.exists()                   # album folders are swept too,
    assert fresh.exists() and done.exists() and saved_as_part.exists()  # a downloaded "x.part" is not
    bad = downloader(redis_server, "work", "--burst", "--dir", str(folder), DOWNLOADER_STALE_PART_AGE="10")
    assert bad.returncode == 1 and "must exceed read_timeout" in bad.stderr


def test_retry_all_runs_shows_each_run_to_completion(redis_server, r, tmp_path):
    from downloader.config import Settings
    web = MisbehavingServer()
    try:
        runs, settings = Runs(r), Settings(queue="all-runs", dir=str(tmp_path))
        first, (ok_url,) = runs.create([f"{web.url}/img/again.png"], "test", settings)
        second, (bad_url,) = runs.create([f"{web.url}/missing.png"], "test", settings)
        Queue("all-runs", connection=r).empty()  # as if the workers had taken them, and failed
        runs.mark(first, ok_url, "failed", reason="HTTP 503")
        runs.mark(second, bad_url, "failed", reason="HTTP 404")
        usage = downloader(redis_server, "retry", "--all-runs", "--no-wait", "--workers", "1")
        assert usage.returncode == 2 and "needs the wait" in usage.stderr
        out = downloader(redis_server, "retry", "--all-runs", "--workers", "1", "--dir", str(tmp_path))
        assert out.returncode == 1, out.stdout + out.stderr  # the 404 failed again
        assert f"Run {first}" in out.stdout and f"Run {second}" in out.stdout
        assert (runs.progress(first).done, runs.progress(second).failed) == (1, 1)
        assert runs.failures(second) == {bad_url: "HTTP 404 Not Found"}
    finally:
        web.stop()


def test_downloads_go_through_the_proxy_the_environment_names(redis_server, tmp_path):
    web, proxy = MisbehavingServer(), ForwardProxy()
    try:
        # the origin is named by its host name: no_proxy-style bypasses of 127.0.0.1 do not apply
        urls = [f"http://localhost:{web.url.rsplit(':', 1)[1]}/img/p{i}.png" for i in range(3)]
        proxied = "http://joe:s%40cret@" + proxy.url.split("//")[1]
        out = downloader(redis_server, "fetch", "--links", "-", "--workers", "1", "--dir", str(tmp_path / "a"),
                         input="\n".join(urls) + "\n", http_proxy=proxied, no_proxy="")
        assert out.returncode == 0, out.stdout + out.stderr
        assert sorted(url for url, _ in proxy.requests) == sorted(urls)
        assert all(auth == "Basic am9lOnNAY3JldA==" for _, auth in proxy.requests)  # joe:s@cret
        bypass = downloader(redis_server, "fetch", "--links", "-", "--workers", "1", "--dir", str(tmp_path / "b"),
                            input="\n".join(urls) + "\n", http_proxy=proxied, no_proxy="localhost")
        assert bypass.returncode == 0 and len(proxy.requests) == 3  # no_proxy: straight to the origin
    finally:
        web.stop()
        proxy.stop()


def test_https_downloads_verify_the_certificate_and_tunnel_through_a_proxy(redis_server, tmp_path):
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    web, proxy = MisbehavingServer(tls=server_tls), ForwardProxy()
    try:
        url = f"https://localhost:{web.url.rsplit(':', 1)[1]}/img/secure.png"

        def fetch(folder, **env):
            return downloader(redis_server, "fetch", "--links", "-", "--workers", "1", "--dir", str(tmp_path / folder),
                              input=url + "\n", DOWNLOADER_RETRIES="0", no_proxy="", **env)

        untrusted = fetch("a")
        assert untrusted.returncode == 1 and "TLS certificate not trusted" in untrusted.stdout
        trusted = fetch("b", SSL_CERT_FILE=str(ca_file))
        assert trusted.returncode == 0, trusted.stdout + trusted.stderr
        tunneled = fetch("c", SSL_CERT_FILE=str(ca_file), https_proxy=proxy.url)
        assert tunneled.returncode == 0, tunneled.stdout + tunneled.stderr
        assert [what for what, _ in proxy.requests] == [f"CONNECT localhost:{web.url.rsplit(':', 1)[1]}"]
        assert len(list((tmp_path / "c").glob("secure-*.png"))) == 1
    finally:
        web.stop()
        proxy.stop()


def test_a_run_owns_its_directory_whatever_the_worker_is_told(redis_server, r, tmp_path):
    web = MisbehavingServer()
    dir_a, dir_b = tmp_path / "dirA", tmp_path / "dirB"
    try:
        first = run_id_of(downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--dir", str(dir_a),
                                     input=f"{web.url}/img/a.png\n").stdout)
        assert dir_a.is_dir()                                   # made by the producer, at once
        out = downloader(redis_server, "fetch", "--links", "-", "--workers", "1", "--dir", str(dir_b),
                         input=f"{web.url}/img/b.png\n")
        assert out.returncode == 0, out.stderr
        wait_for(lambda: Runs(r).progress(first).complete, timeout=30, message="run A done by B's worker")
        assert [p.name for p in dir_a.iterdir()] == [file_name(f"{web.url}/img/a.png")]    # A's file in dirA
        assert [p.name for p in dir_b.iterdir()] == [file_name(f"{web.url}/img/b.png")]
        assert f"into {dir_a}: 1 file(s)" in downloader(redis_server, "status", first).stdout
    finally:
        web.stop()


def test_names_that_are_not_utf8_are_refused_up_front_or_their_failures_stored_escaped(redis_server, r, tmp_path):
    """Undecodable bytes in a name (surrogates, as Python reads them): the
    producer refuses such a --dir or --name before it enqueues anything; a
    worker whose own mount has such a name records each failure it meets
    there itself (the name escaped), not a failed mark left for repair."""
    web = MisbehavingServer()
    links = f"{web.url}/img/u1.png\n{web.url}/img/u2.png\n"
    try:
        bad_dir = str(tmp_path / "photos") + "\udcff"  # b"photos\xff" on disk
        for option, value in (("--dir", bad_dir), ("--name", "x\udcff{id}")):
            args = ["--dir", str(tmp_path / "ok")] if option == "--name" else []
            refused = downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--queue", "utf8", *args,
                                 option, value, input=links)
            assert refused.returncode == 1 and "not UTF-8" in refused.stderr, refused.stderr
            assert "\\udcff" in refused.stderr and "Traceback" not in refused.stderr
        assert Queue("utf8", connection=r).count == 0 and not os.path.exists(bad_dir)
        for command in (["status", "r\udcff"], ["fetch", "--links", "-", "--no-wait", "--queue", "q\udcff"]):
            refused = downloader(redis_server, *command, input=links)
            assert refused.returncode == 1 and "is not UTF-8" in refused.stderr, refused.stderr
            assert "Traceback" not in refused.stderr
        share = tmp_path / "share"
        run_id = run_id_of(downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--queue", "utf8",
                                      "--root", str(share), "--dir", str(share / "sub"), input=links).stdout)
        mount = str(tmp_path / "mount") + "\udcff"
        os.makedirs(mount)
        with open(os.path.join(mount, "sub"), "w"):  # on this machine the run's directory is a file
            pass
        worker = downloader(redis_server, "work", "--burst", "--queue", "utf8", "--root", mount, DOWNLOADER_RETRIES="0")
        assert worker.returncode == 0 and "Traceback" not in worker.stderr, worker.stderr
        assert Runs(r).progress(run_id).failed == 2  # marked by the worker (read before any status could repair)
        failures = Runs(r).failures(run_id)
        assert len(failures) == 2 and all("mount\\udcff" in why for why in failures.values()), failures
    finally:
        web.stop()


def test_a_key_of_another_type_is_one_line_naming_it(redis_server, r, tmp_path):
    r.rpush("{downloader}:shards", "someone else's")
    for command in (["fetch", "--links", "-", "--no-wait", "--dir", str(tmp_path)], ["work", "--burst"]):
        out = downloader(redis_server, *command, input="http://127.0.0.1:9/x.png\n")
        assert out.returncode == 1 and "{downloader}:shards" in out.stderr and "delete it" in out.stderr
        assert "Traceback" not in out.stderr


def test_a_runs_index_of_another_type_refuses_a_fetch_before_anything_is_written(redis_server, r, tmp_path):
    r.rpush("downloader:runs", "someone else's")
    out = downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--dir", str(tmp_path),
                     input="http://127.0.0.1:9/x.png\n")
    assert out.returncode == 1 and "downloader:runs" in out.stderr and "delete it" in out.stderr
    assert "Traceback" not in out.stderr
    assert r.keys("downloader:run:*") == [] and r.lrange("downloader:runs", 0, -1) == [b"someone else's"]
    r.delete("downloader:runs")
    again = downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--dir", str(tmp_path),
                       input="http://127.0.0.1:9/x.png\n")
    assert again.returncode == 0, again.stderr
    assert Runs(r).progress(run_id_of(again.stdout)).total == 1


def test_a_shared_root_is_mapped_by_each_worker_and_an_unreachable_directory_fails_clearly(redis_server, r, tmp_path):
    web = MisbehavingServer()
    share, other_mount = tmp_path / "share", tmp_path / "mnt"
    share.mkdir()
    other_mount.symlink_to(share)                               # the same share, mounted elsewhere on "another machine"
    try:
        run_id = run_id_of(downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--queue", "rooted",
                                      "--root", str(share), "--dir", str(share / "photos"),
                                      input=f"{web.url}/img/r1.png\n{web.url}/img/r2.png\n").stdout)
        assert r.hget(f"downloader:run:{run_id}", "target") in (b"root:photos",)  # relative to the root
        rootless = downloader(redis_server, "work", "--burst", "--queue", "rooted", "--dir", str(tmp_path / "x"),
                              DOWNLOADER_RETRIES="0")
        assert rootless.returncode == 0
        failures = Runs(r).failures(run_id)
        assert all("this worker has none: start it with --root" in why for why in failures.values()), failures
        again = downloader(redis_server, "retry", run_id, "--workers", "1", "--root", str(other_mount))
        assert again.returncode == 0, again.stderr
        assert sorted(p.name for p in (share / "photos").iterdir()) == sorted(
            file_name(f"{web.url}/img/{n}.png") for n in ("r1", "r2"))
        gone = tmp_path / "gone"
        lost = run_id_of(downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--queue", "lost",
                                    "--dir", str(gone), input=f"{web.url}/img/l.png\n").stdout)
        gone.rmdir()                                            # not there on the worker's machine
        downloader(redis_server, "work", "--burst", "--queue", "lost", DOWNLOADER_RETRIES="0")
        (why,) = Runs(r).failures(lost).values()
        assert f"cannot reach the run's directory {gone}" in why and not gone.exists()   # nothing written elsewhere
    finally:
        web.stop()
