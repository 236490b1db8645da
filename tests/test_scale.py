"""Past Redis's limits: no command of either package grows with the number of
links or jobs. Redis refuses a command of more than 1,048,576 arguments, so
a run of more links than that must enqueue whole (tiny URLs keep it fast)."""

import pytest

from downloader.keys import Keys
from downloader.runs import Runs
from jobqueue import Queue
from tests.redis_server import RedisServer
from tests.test_downloader_e2e import downloader, run_id_of

PAST_THE_LIMIT = 1_048_576 + 5_000


@pytest.mark.long
def test_a_links_file_past_redis_argument_limit_enqueues_whole_and_empties_whole(tmp_path):
    server = RedisServer(tmp_path / "redis", extra=("--appendonly", "no")).start()  # its own: half a GB, freed after
    try:
        links = tmp_path / "links.txt"
        with links.open("w") as out:
            for i in range(PAST_THE_LIMIT):
                out.write(f"http://h/{i}\n")
            out.write("http://h/7\n")  # a repeat, far from its first
        result = downloader(server, "fetch", "--links", str(links), "--no-wait", "--dir", str(tmp_path / "dl"),
                            "--queue", "big", timeout=600)
        assert result.returncode == 0, result.stderr
        r = server.client()
        run_id = run_id_of(result.stdout)
        progress = Runs(r).progress(run_id)
        assert progress.total == PAST_THE_LIMIT and progress.state == "enqueued"
        assert r.hlen(Keys().urls(run_id)) == PAST_THE_LIMIT
        queue = Queue("big", connection=r)
        assert queue.count == PAST_THE_LIMIT
        assert queue.empty() == PAST_THE_LIMIT and queue.count == 0
        assert not r.keys("jobqueue:job:*")  # every hash went with its id
    finally:
        server.stop()
