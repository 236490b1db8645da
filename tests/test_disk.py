"""A download directory that refuses bytes (full, read-only) is not a network
error: the job fails at once and says where and why, and the worker takes no
more downloads until the directory takes bytes again."""

import os
import subprocess
import sys

import pytest

from downloader import disk
from downloader.download import download_link
from downloader.exceptions import DiskError
from downloader.runs import Runs
from downloader.config import Settings
from jobqueue import Queue
from tests.conftest import ROOT, wait_for
from tests.http_server import MisbehavingServer
from tests.test_downloader_e2e import env_for


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs of the test's own (root only; else the test is skipped)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(mount, leave=8192):
    """Leave about ``leave`` bytes free."""
    st = os.statvfs(mount)
    free = st.f_bavail * st.f_frsize
    (mount / "filler").write_bytes(b"\0" * max(0, free - leave))


@pytest.fixture(scope="module")
def web():
    server = MisbehavingServer(slow_delay=0.0)
    yield server
    server.stop()


def test_a_read_only_directory_fails_at_once_naming_it(web, small_disk, monkeypatch):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    monkeypatch.setattr(disk, "PROBE_EVERY", 0.0)
    with pytest.raises(DiskError, match=f"cannot write to {small_disk}: Read-only file system .EROFS.") as caught:
        download_link(str(small_disk), f"{web.url}/img/ro.png")
    assert caught.value.directory == str(small_disk)
    assert "Read-only" in (disk.hold() or "")                  # the worker would take no job now
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert disk.hold() is None                                  # a probe write went through: work goes on
    assert download_link(str(small_disk), f"{web.url}/img/ro.png")["status"] == "done"


def test_a_full_disk_fails_the_job_and_leaves_nothing(web, small_disk, monkeypatch):
    _fill(small_disk)
    monkeypatch.setattr(disk, "PROBE_EVERY", 0.0)
    with pytest.raises(DiskError, match="No space left on device .ENOSPC."):
        download_link(str(small_disk), f"{web.url}/slow/full.png")   # 37 KB into 8 KB
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no part file stays
    (small_disk / "filler").unlink()
    assert disk.hold() is None


def test_a_worker_on_a_full_disk_holds_off_until_space_is_freed(redis_server, r, web, small_disk):
    urls = [f"{web.url}/slow/f{i}.png" for i in range(4)]
    settings = Settings(queue="full-disk", dir=str(small_disk), retries=3)
    run_id, _ = Runs(r).create(urls, "test", settings)
    _fill(small_disk)
    log = small_disk.parent / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen([sys.executable, "-m", "downloader", "work", "-c", "1", "--queue", "full-disk",
                                   "--dir", str(small_disk)], cwd=ROOT, env=env_for(redis_server),
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Taking no jobs" in log.read_text(), message="the worker holds off")
        runs = Runs(r)
        wait_for(lambda: runs.progress(run_id).failed == 1, message="the one that met the full disk failed at once")
        assert "ENOSPC" in next(iter(runs.failures(run_id).values()))
        assert Queue("full-disk", connection=r).count == 3          # the others wait in the queue, untouched
        (small_disk / "filler").unlink()
        wait_for(lambda: runs.progress(run_id).done == 3, timeout=30, message="the rest downloaded once freed")
        assert "Taking jobs again" in log.read_text()
        saved = [p for p in small_disk.iterdir() if p.suffix == ".png"]
        assert len(saved) == 3 and all(p.read_bytes() == web.slow_body for p in saved)
    finally:
        worker.terminate()
        worker.wait()
