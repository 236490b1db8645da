"""Huey's side of the throughput benchmark: Redis storage, results off, a no-op task."""

import os

from huey import RedisHuey

huey = RedisHuey("bench", url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"), results=False)


@huey.task()
def noop():
    return None
