"""The benchmark's no-op job, for jobqueue and RQ (both import by dotted path)."""


def noop():
    return None
