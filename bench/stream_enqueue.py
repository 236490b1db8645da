"""Enqueueing a big links file: links/s, the producer's peak RSS and Redis
bytes per pending download, for 50,000 and 200,000 links, with a private
Redis (a first figure for issue 14; bench/scale.py will hold the rest).

    .venv/bin/python bench/stream_enqueue.py [--sizes 50000,200000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, PrivateRedis  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50000,200000")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stream-enqueue-"))
    redis = PrivateRedis()
    print("| links | wall s | links/s | producer peak RSS MB | Redis bytes per pending download |")
    print("|---:|---:|---:|---:|---:|")
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            redis.reset()
            links = work / "links.txt"
            links.write_text("".join(f"http://127.0.0.1:9/i/{i}.jpg\n" for i in range(n)))
            env = {**os.environ, "DOWNLOADER_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)}
            start = time.perf_counter()
            done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "downloader", "fetch", "--links",
                                   str(links), "--no-wait", "--quiet", "--dir", str(work / "dl")],
                                  env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            assert done.returncode == 0, done.stderr
            rss = int(done.stderr.strip().splitlines()[-1]) / 1024
            used = redis.client.info("memory")["used_memory"]
            print(f"| {n:,} | {wall:.1f} | {n / wall:,.0f} | {rss:.0f} | {used / n:,.0f} |")
    finally:
        redis.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
