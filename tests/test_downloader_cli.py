"""Every downloader command and option, as a user types them, checked by its effect."""

import json
import os
import re
import signal
import time
from datetime import timedelta
import subprocess
import sys
import urllib.request

from downloader.config import Settings
from downloader.demo_server import DemoServer
from downloader.runs import Runs
from jobqueue import JobStatus, Queue, Worker
from jobqueue.worker import list_workers
from tests.conftest import ROOT, wait_for
from tests.http_server import MisbehavingServer
from tests.test_downloader_e2e import downloader, env_for, run_id_of
from tests.test_sources import ScriptedApi, image


def popen(redis_server, *args, input=None, **extra):
    """A downloader command in the background; ``input`` is written to its stdin, which is then closed."""
    proc = subprocess.Popen([sys.executable, "-m", "downloader", *args], cwd=ROOT,
                            env=env_for(redis_server, PYTHONUNBUFFERED="1", **extra),
                            # Ctrl+C reaches it even when the suite runs as a background job (SIGINT ignored)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdin=subprocess.PIPE if input is not None else None,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if input is not None:
        proc.stdin.write(input)
        proc.stdin.close()
        proc.stdin = None  # sent: communicate() only reads
    return proc


def finished_by_a_worker(redis_server, watcher, queue, directory):
    """Start a worker on ``queue`` and wait for the watching command to end; its (stdout, stderr)."""
    worker = popen(redis_server, "work", "--queue", queue, "--dir", str(directory))
    try:
        return watcher.communicate(timeout=60)
    finally:
        worker.terminate()
        worker.wait()


def links_in(demo: DemoServer, pages: int) -> int:
    """The image links `fetch --pages N` finds in the demo gallery."""
    count = 0
    for page in range(pages):
        for item in demo.gallery.page(page):
            count += len(demo.gallery.albums[item["id"]]) if item["is_album"] else 1
    return count


def test_help_and_version():
    top = subprocess.run([sys.executable, "-m", "downloader", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert top.returncode == 0
    for command in ("fetch", "work", "status", "runs", "retry", "failed", "demo-server"):
        assert f"  {command} " in top.stdout
        sub = subprocess.run([sys.executable, "-m", "downloader", command, "--help"], cwd=ROOT, capture_output=True,
                             text=True)
        assert sub.returncode == 0 and f"Usage: downloader {command}" in sub.stdout
    version = subprocess.run([sys.executable, "-m", "downloader", "--version"], cwd=ROOT, capture_output=True, text=True)
    assert version.returncode == 0 and "0.1.0" in version.stdout


def test_fetch_pages_queue_and_config_file_decide_what_is_enqueued_where(redis_server, r, tmp_path):
    demo = DemoServer(images=100).start()
    try:
        one, two = links_in(demo, 1), links_in(demo, 2)
        assert one < two == 100
        out = downloader(redis_server, "fetch", "--client-id", "demo", "--api-url", demo.url, "--pages", "1",
                         "--queue", "page-one", "--no-wait", "--dir", str(tmp_path))
        assert out.returncode == 0 and f"{one} download(s) enqueued on 'page-one'" in out.stdout
        assert Queue("page-one", connection=r).count == one
        config = tmp_path / "mine.toml"
        config.write_text(f'queue = "from-config"\npages = 2\napi_url = "{demo.url}"\n')
        out = downloader(redis_server, "fetch", "--client-id", "demo", "--config", str(config), "--no-wait",
                         "--dir", str(tmp_path))
        assert out.returncode == 0 and f"{two} download(s) enqueued on 'from-config'" in out.stdout
        assert Queue("from-config", connection=r).count == two
        gallery = f"Imgur gallery at {demo.url} (2 page(s))"                            # progress while reading
        assert f"Read page 1 of {gallery}: {one} link(s) so far" in out.stderr
        assert f"Read page 2 of {gallery}: {two} link(s) so far" in out.stderr
    finally:
        demo.stop()


def test_fetch_concurrency_sizes_the_local_workers(redis_server, r, tmp_path):
    web = MisbehavingServer(slow_delay=0.2, slow_size=120)
    try:
        urls = "".join(f"{web.url}/slow/c{i}.png\n" for i in range(3))
        proc = popen(redis_server, "fetch", "--links", "-", "--workers", "1", "--concurrency", "3",
                     "--dir", str(tmp_path), input=urls)
        wait_for(lambda: [w for w in list_workers(r) if len(w.current_jobs) == 3], message="3 downloads at once")
        assert [w.concurrency for w in list_workers(r)] == [3]
        assert proc.wait(timeout=60) == 0
    finally:
        web.stop()


def test_status_plain_and_watch_show_the_run_and_exit_with_its_outcome(redis_server, r, tmp_path):
    web = MisbehavingServer()
    try:
        ok, missing = f"{web.url}/img/st.png", f"{web.url}/missing.png"
        out = downloader(redis_server, "fetch", "--links", "-", "--no-wait", "--queue", "st", "--dir", str(tmp_path),
                         input=f"{ok}\n{missing}\n")
        run_id = run_id_of(out.stdout)
        plain = downloader(redis_server, "status", run_id)
        assert plain.returncode == 0
        assert f"Run {run_id} (stdin) into {tmp_path}: 2 file(s)" in plain.stdout
        assert "pending        2" in plain.stdout and "No live workers on queue 'st'" in plain.stdout
        watcher = popen(redis_server, "status", run_id, "--watch")
        stdout, stderr = finished_by_a_worker(redis_server, watcher, "st", tmp_path)
        assert watcher.returncode == 1  # one download failed
        assert "done           1" in stdout and "failed         1" in stdout and missing in stdout
        assert "100%" in stderr
    finally:
        web.stop()


def test_runs_lists_the_newest_first_up_to_the_limit(redis_server, r):
    runs = Runs(r)
    ids = [runs.create([f"http://h/{n}.png"], f"source-{n}", Settings(queue="lim"))[0] for n in range(3)]
    out = downloader(redis_server, "runs", "--limit", "2")
    rows = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert out.returncode == 0 and rows == [ids[2], ids[1]]


def test_a_machine_whose_shards_setting_differs_from_the_runs_kept_is_refused(redis_server, r, tmp_path):
    # it would see only part of the runs and serve only part of the jobs; once those runs and their
    # workers are gone, it may
    run_id = Runs(r).create(["http://h/1.png"], "kept", Settings(dir=str(tmp_path)))[0]
    assert downloader(redis_server, "runs", DOWNLOADER_SHARDS="1").returncode == 0  # the first machine records 1
    for args in (["runs"], ["status", run_id], ["work", "--burst"]):
        out = downloader(redis_server, *args, DOWNLOADER_SHARDS="3")
        assert out.returncode == 1 and "has runs of a layout with shards = 1" in out.stderr, out.stderr
        assert "give every machine shards = 1" in out.stderr
    assert r.get("{downloader}:shards") == b"1"
    assert downloader(redis_server, "delete", run_id, DOWNLOADER_SHARDS="1").returncode == 0
    worker = popen(redis_server, "work", "--dir", str(tmp_path), DOWNLOADER_SHARDS="1")
    try:
        wait_for(lambda: Worker.count(connection=r) == 1, message="a worker of the recorded layout")
        out = downloader(redis_server, "runs", DOWNLOADER_SHARDS="3")
        assert out.returncode == 1 and "has 1 live worker(s) of a layout with shards = 1" in out.stderr, out.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    out = downloader(redis_server, "runs", DOWNLOADER_SHARDS="3")
    assert out.returncode == 0 and r.get("{downloader}:shards") == b"3", out.stderr
    r.set("{downloader}:shards", "garbage")   # a record someone wrote over: the machine's setting stands
    assert downloader(redis_server, "runs", DOWNLOADER_SHARDS="3").returncode == 0
    assert r.get("{downloader}:shards") == b"3"


def test_demo_server_serves_a_gallery_of_real_images_behind_a_client_id(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "downloader", "demo-server", "--port", "0", "--images", "5"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().strip()
        request = urllib.request.Request(f"{url}/3/gallery/random/random/0", headers={"Authorization": "Client-ID x"})
        items = json.load(urllib.request.urlopen(request, timeout=10))["data"]
        images = [item for item in items if item["type"].startswith("image/")]
        videos = [item for item in items if item["type"] == "video/mp4"]
        assert len(images) == 5 and len(videos) == 4 and len(items) == 9        # 4 video posts by default
        body = urllib.request.urlopen(images[0]["link"], timeout=10).read()
        assert body[:3] == b"\xff\xd8\xff" or body[:8] == b"\x89PNG\r\n\x1a\n"
        assert urllib.request.urlopen(videos[0]["mp4"], timeout=10).read()[4:8] == b"ftyp"
        try:
            urllib.request.urlopen(f"{url}/3/gallery/random/random/0", timeout=10)
            raise AssertionError("a request without a client id was served")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
    finally:
        proc.terminate()
        proc.wait()


def test_work_runs_only_the_downloaders_own_functions(redis_server, r, tmp_path):
    q = Queue("guarded", connection=r)
    foreign = q.enqueue("tests.jobs.add", 1, 1)
    stdlib = q.enqueue("os.getcwd")
    out = downloader(redis_server, "work", "--burst", "--queue", "guarded", "--dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    for job in (foreign, stdlib):
        job.refresh()
        assert job.get_status() == JobStatus.FAILED and "is not among the modules this worker runs" in job.exc_info


def test_ctrl_c_stops_watching_and_the_run_goes_on(redis_server, r, tmp_path):
    web = MisbehavingServer()
    try:
        urls = [f"{web.url}/img/cc{i}.png" for i in range(3)]
        proc = popen(redis_server, "fetch", "--links", "-", "--queue", "cc", "--dir", str(tmp_path),
                     input="".join(u + "\n" for u in urls))
        first = proc.stdout.readline()  # "Run ...: 3 download(s) enqueued": watching now (an interrupted
        assert first.startswith("Run ")  # enqueue is the run-lifecycle issue's business)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        stdout = first + stdout
        assert proc.returncode == 130 and "Stopped watching" in stderr and "Traceback" not in stderr, stderr
        run_id = run_id_of(stdout)
        assert Queue("cc", connection=r).count == 3  # nothing was taken back
        out = downloader(redis_server, "work", "--burst", "--queue", "cc", "--dir", str(tmp_path))
        assert out.returncode == 0 and Runs(r).progress(run_id).done == 3
    finally:
        web.stop()


def test_a_source_that_fails_on_a_later_page_leaves_its_run_to_resume(redis_server, r, tmp_path):
    api = ScriptedApi({
        "/3/gallery/random/random/0": [(200, {}, {"data": [image(1), image(2)]})],
        "/3/gallery/random/random/1": [(500, {}, {"data": {}}), (200, {}, {"data": [image(3)]})],
    })
    try:
        out = downloader(redis_server, "fetch", "--client-id", "x", "--api-url", api.url, "--pages", "2",
                         "--no-wait", "--dir", str(tmp_path))
        assert out.returncode == 1 and "HTTP 500" in out.stderr
        assert "stays open (interrupted) with 2 download(s) enqueued" in out.stderr       # what it read, enqueued
        run_id = run_id_of(out.stdout)
        assert Queue("downloads", connection=r).count == 2 and Runs(r).progress(run_id).interrupted
        again = downloader(redis_server, "fetch", "--resume", run_id, "--client-id", "x", "--no-wait")
        assert again.returncode == 0 and "1 more download(s) enqueued" in again.stdout, again.stderr
        assert Queue("downloads", connection=r).count == 3 and Runs(r).progress(run_id).state == "enqueued"
    finally:
        api.stop()


def test_with_no_redis_url_anywhere_the_embedded_redis_is_used(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DOWNLOADER_REDIS_URL", "JOBQUEUE_REDIS_URL")}
    env.update(JOBQUEUE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    try:
        def runs():
            return subprocess.run([sys.executable, "-m", "downloader", "runs"], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=60)
        out = runs()
        assert out.returncode == 0 and "No runs yet" in out.stdout
        assert f"Started the embedded Redis (data in {tmp_path / 'data'}); it keeps running" in out.stderr
        assert "stop it with `jobqueue embedded stop`" in out.stderr
        port, password, pid = (tmp_path / "data" / "server.info").read_text().split()
        os.kill(int(pid), 0)  # the embedded server runs, and keeps running for the next command
        again = runs()
        assert again.returncode == 0 and "Started the embedded Redis" not in again.stderr   # said once, when started
    finally:
        subprocess.run([sys.executable, "-m", "jobqueue", "embedded", "stop"], cwd=ROOT, env=env, timeout=60)


def test_fetch_stops_when_its_local_workers_exit_first(redis_server, r, tmp_path):
    web = MisbehavingServer()
    try:
        not_a_dir = tmp_path / "file"
        not_a_dir.write_text("a file, not a directory")
        refused = downloader(redis_server, "fetch", "--links", "-", "--queue", "gone", "--dir", str(not_a_dir),
                             input=f"{web.url}/img/g.png\n")
        assert refused.returncode == 1 and "is not a directory" in refused.stderr   # the producer checks first
        out = downloader(redis_server, "fetch", "--links", "-", "--queue", "gone", "--workers", "1",
                         "--dir", str(tmp_path / "dl"), input=f"{web.url}/img/g.png\n", timeout=60,
                         DOWNLOADER_STALE_PART_AGE="10")      # the workers refuse to start with this
        assert out.returncode == 1, out.stderr
        assert "local workers exited before run" in out.stderr and "must exceed read_timeout" in out.stderr
        assert "The run stays" in out.stderr and "Traceback" not in out.stderr
        assert Queue("gone", connection=r).count == 1               # nothing was lost: resumable by any worker
    finally:
        web.stop()


def test_fetch_without_workers_says_nobody_takes_downloads_then_carries_on(redis_server, r, tmp_path):
    web = MisbehavingServer()
    try:
        watcher = popen(redis_server, "fetch", "--links", "-", "--queue", "nobody", "--dir", str(tmp_path),
                        input=f"{web.url}/img/n.png\n")
        seen = []

        def hinted():
            line = watcher.stderr.readline()
            seen.append(line)
            return "No worker is taking downloads from queue 'nobody'" in line

        wait_for(hinted, timeout=30, message="the hint")
        stdout, stderr = finished_by_a_worker(redis_server, watcher, "nobody", tmp_path)
        assert watcher.returncode == 0 and "done           1" in stdout, "".join(seen) + stderr
    finally:
        web.stop()


def test_status_marks_a_silent_worker_and_ctrl_c_exits_130(redis_server, r, tmp_path):
    runs = Runs(r)
    run_id, _ = runs.create(["http://127.0.0.1:1/x.png"], "test", Settings(queue="silent", dir=str(tmp_path)))
    Queue("silent", connection=r).empty()                  # nothing for the worker to do,
    Queue("silent", connection=r).enqueue_in(timedelta(hours=1), "tests.jobs.add", 1, 2)  # yet the run waits
    worker = popen(redis_server, "work", "--queue", "silent", "--dir", str(tmp_path),
                   JOBQUEUE_HEARTBEAT_TTL="30")            # its entry outlives it: only the silence tells
    try:
        wait_for(lambda: any("silent" in w.queues for w in list_workers(r)), message="worker registered")
        alive = downloader(redis_server, "status", run_id).stdout
        assert "(idle, last beat 0 s ago" in alive, alive
    finally:
        worker.kill()                                      # (also when the test fails: no worker left behind)
        worker.wait()
    time.sleep(2.0)                                        # more than two beats (0.3 s) and a second
    dead = downloader(redis_server, "status", run_id).stdout
    silence = re.search(r"\(not responding, last beat (\d+) s ago", dead)
    assert silence and int(silence.group(1)) >= 2, dead   # at least the 2 s slept (more on a loaded machine)
    watcher = popen(redis_server, "status", run_id, "--watch")
    first = watcher.stderr.readline()                      # watching (a plain progress line): Ctrl+C now
    watcher.send_signal(signal.SIGINT)
    _, stderr = watcher.communicate(timeout=30)
    stderr = first + stderr
    assert watcher.returncode == 130 and "Stopped watching" in stderr and "Traceback" not in stderr


def test_links_files_are_checked_where_they_enter(redis_server, r, tmp_path):
    web = MisbehavingServer()
    good = f"{web.url}/img/in.png"
    try:
        bom = tmp_path / "bom.txt"
        bom.write_bytes(b"\xef\xbb\xbf" + f"{good}\n# a comment\n\nnot a url\njavascript:alert(1)\nfile:///etc/passwd\n".encode())
        out = downloader(redis_server, "fetch", "--links", str(bom), "--no-wait", "--queue", "in", "--dir", str(tmp_path))
        assert out.returncode == 0, out.stderr
        assert "1 download(s) enqueued" in out.stdout                       # the BOM did not spoil the first URL
        assert "Skipped 3 line(s)" in out.stderr and "line 4: 'not a url'" in out.stderr
        assert "line 5: 'javascript:alert(1)'" in out.stderr and "line 6: 'file:///etc/passwd'" in out.stderr
        assert [job.args[0] for job in Queue("in", connection=r).get_jobs()] == [good]
        strict = downloader(redis_server, "fetch", "--links", str(bom), "--strict", "--queue", "in2", "--dir", str(tmp_path))
        assert strict.returncode == 1 and "line 4: 'not a url' is not a URL to download" in strict.stderr
        assert Queue("in2", connection=r).count == 0
        latin = tmp_path / "latin1.txt"
        latin.write_bytes(f"{good}\n".encode() + "http://h/caf\u00e9.png\n".encode("latin-1"))
        bad = downloader(redis_server, "fetch", "--links", str(latin), "--queue", "in3", "--dir", str(tmp_path))
        assert bad.returncode == 1 and "is not UTF-8 (line 2" in bad.stderr and "Traceback" not in bad.stderr
        assert Queue("in3", connection=r).count == 0                         # nothing was enqueued
    finally:
        web.stop()


def test_one_redis_setting_serves_both_commands_and_errors_name_it(redis_server, r, tmp_path):
    run_id, _ = Runs(r).create(["http://h/one.png"], "test", Settings(queue="one-setting"))
    env = {"DOWNLOADER_REDIS_URL": "", "JOBQUEUE_REDIS_URL": redis_server.url}
    out = downloader(redis_server, "runs", "--limit", "1000", **env)
    assert out.returncode == 0 and run_id in out.stdout                    # the test's Redis, not the embedded one
    beyond = redis_server.url.rsplit("/", 1)[0] + "/99"
    bad_db = downloader(redis_server, "runs", DOWNLOADER_REDIS_URL=beyond)
    assert bad_db.returncode == 1 and "DB index is out of range" in bad_db.stderr
    assert "--redis-url / DOWNLOADER_REDIS_URL / JOBQUEUE_REDIS_URL" in bad_db.stderr and "Traceback" not in bad_db.stderr
    down = downloader(redis_server, "runs", DOWNLOADER_REDIS_URL="redis://127.0.0.1:1/0")
    assert down.returncode == 1 and "set --redis-url / DOWNLOADER_REDIS_URL / JOBQUEUE_REDIS_URL" in down.stderr


def test_failed_lists_the_failed_downloads_with_their_reasons(redis_server, r, tmp_path):
    runs = Runs(r)
    run_id, urls = runs.create(["http://h/f1.png", "http://h/f2.png", "http://h/ok.png"], "test",
                               Settings(queue="failed-list", dir=str(tmp_path)))
    runs.mark(run_id, urls[0], "failed", reason="HTTP 404 Not Found")
    runs.mark(run_id, urls[1], "failed", reason="network error: timed out")
    runs.mark(run_id, urls[2], "done", 10)
    out = downloader(redis_server, "failed", run_id)
    assert out.returncode == 0 and f"2 failed download(s) in run {run_id}" in out.stdout
    assert "http://h/f1.png\n      HTTP 404 Not Found" in out.stdout and "ok.png" not in out.stdout
    as_json = json.loads(downloader(redis_server, "failed", run_id, "--json").stdout)
    assert as_json == {"run": run_id, "failed": [{"url": urls[0], "reason": "HTTP 404 Not Found"},
                                                 {"url": urls[1], "reason": "network error: timed out"}]}
    unknown = downloader(redis_server, "failed", "no-such-run")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr


def _in_a_terminal(redis_server, columns, *args):
    """Run a command with a pseudo-terminal of ``columns`` as its stdout and stderr; what it drew."""
    import fcntl
    import pty
    import re
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = env_for(redis_server, COLUMNS=str(columns))
    proc = subprocess.Popen([sys.executable, "-m", "downloader", *args], cwd=ROOT, env=env, stdin=slave,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    return proc.returncode, [line for line in re.split(r"[\r\n]", text) if line.strip()]


def test_the_bar_keeps_what_matters_at_80_columns_and_plain_lines_elsewhere(redis_server, r, tmp_path):
    runs = Runs(r)
    urls = [f"http://h/t{i}.png" for i in range(3)]
    run_id, _ = runs.create(urls, "test", Settings(queue="term", dir=str(tmp_path)))
    runs.mark(run_id, urls[0], "done", 123456)
    runs.mark(run_id, urls[1], "skipped")
    runs.mark(run_id, urls[2], "failed", reason="HTTP 404")
    whole = {"done 1", "failed 1", "0 B/s", "skipped 1", "120.6 KB"}
    for columns in (40, 80, 120):
        code, lines = _in_a_terminal(redis_server, columns, "status", run_id, "--watch")
        bars = [line for line in lines if "|" in line and "%" in line]
        assert code == 1 and bars, lines
        assert all(len(line) <= columns for line in bars), bars
        shown = [line.split("3/3, ", 1)[1].strip().split(", ") for line in bars]
        assert all(items[:2] == ["done 1", "failed 1"] and set(items) <= whole for items in shown), bars  # whole fields
        if columns == 120:
            assert all(set(items) == whole for items in shown), bars
    runs2 = Runs(r)
    later, pair = runs2.create(["http://h/p1.png", "http://h/p2.png"], "test", Settings(queue="term", dir=str(tmp_path)))
    runs2.mark(later, pair[0], "done", 10)
    piped = popen(redis_server, "status", later, "--watch")                # not a terminal: plain lines
    first = piped.stderr.readline()                                        # it has shown the run half done
    runs2.mark(later, pair[1], "done", 10)
    _, stderr = piped.communicate(timeout=30)
    stderr = first + stderr
    assert f"run {later}: 50% (1/2), done 1" in stderr and f"run {later}: 100% (2/2), done 2" in stderr
    assert "\r" not in stderr


def test_fetch_and_retry_quiet_and_json_for_scripts(redis_server, r, tmp_path):
    web = MisbehavingServer()
    try:
        links = f"{web.url}/img/q1.png\n{web.url}/missing.png\n"
        quiet = downloader(redis_server, "fetch", "--links", "-", "--queue", "qj", "--workers", "1", "--quiet",
                           "--dir", str(tmp_path / "a"), input=links)
        assert quiet.returncode == 1                                   # one failed: the exit code says so
        assert quiet.stdout.count("\n") == 1 and quiet.stdout.startswith("Run ")   # the run id line, nothing more
        assert "%" not in quiet.stderr and "done " not in quiet.stdout
        as_json = downloader(redis_server, "fetch", "--links", "-", "--queue", "qj", "--workers", "1", "--json",
                             "--dir", str(tmp_path / "b"), input=links)
        (run,) = json.loads(as_json.stdout)["runs"]                    # stdout is one JSON document
        assert as_json.returncode == 1 and (run["done"], run["failed"]) == (1, 1)
        assert list(run["failures"]) == [f"{web.url}/missing.png"] and "%" not in as_json.stderr
        again = downloader(redis_server, "retry", run["run_id"], "--workers", "1", "--json")
        (retried,) = json.loads(again.stdout)["runs"]
        assert again.returncode == 1 and retried["failed"] == 1
        silent = downloader(redis_server, "status", run["run_id"], "--quiet")
        assert (silent.returncode, silent.stdout, silent.stderr) == (1, "", "")   # a failure: exit 1, no words
        ok_run, _ = Runs(r).create([f"{web.url}/img/q2.png"], "test", Settings(queue="qj", dir=str(tmp_path)))
        watcher = popen(redis_server, "status", ok_run, "--watch", "--quiet")
        stdout, stderr = finished_by_a_worker(redis_server, watcher, "qj", tmp_path)
        assert watcher.returncode == 0 and stdout == "" and "%" not in stderr   # all done: exit 0, no progress
    finally:
        web.stop()


def test_a_download_worker_turns_its_libcurl_loop_on_its_own_thread(redis_server, r, tmp_path):
    """`downloader work` is a driven worker (jobqueue's Worker(loop=...)): sixteen
    downloads in flight at once run on the loop its own thread turns, with no
    thread per job and no loop thread (before: a loop thread and four job threads)."""
    web = MisbehavingServer(slow_delay=0.05, slow_size=300)  # each image sent in pieces, with pauses
    try:
        urls = [f"{web.url}/slow/t{i}.png" for i in range(16)]
        run_id, _ = Runs(r).create(urls, "test", Settings(queue="one-thread", dir=str(tmp_path / "out")))
        worker = popen(redis_server, "work", "--queue", "one-thread", "--dir", str(tmp_path / "out"), "-c", "16")
        try:
            runs, threads = Runs(r), []
            wait_for(lambda: threads.append(_threads(worker.pid)) or runs.progress(run_id).complete, timeout=60,
                     message="every download done")
            assert runs.progress(run_id).done == 16
            assert web.most_bodies_in_flight >= 8    # they did run side by side
            assert max(threads) <= 4, threads        # main, heartbeat, waker, host leases
        finally:
            worker.terminate()
            worker.wait()
        saved = list((tmp_path / "out").iterdir())
        assert len(saved) == 16 and all(p.read_bytes() == web.slow_body for p in saved)
    finally:
        web.stop()


def _threads(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0
