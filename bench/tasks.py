"""The benchmark's no-op job, for jobqueue and RQ (both import by dotted path)."""


def noop():
    return None


def stamp():
    """When a worker started it (wall clock of this machine): the fleet benchmark's wake-up."""
    import time
    return time.time()
