"""Job functions the tests enqueue; workers import them as tests.jobs.*."""

import os
import time

from jobqueue import Script, get_current_job


def add(a, b):
    return a + b


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


def fail(message="boom"):
    raise ValueError(message)


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def busy_loop(seconds):
    """Pure Python: a thread-mode timeout can interrupt it."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


def rendezvous(path, n, timeout=10.0):
    """Arrive (one byte in a file), then wait until n jobs have arrived: only
    jobs that run side by side all return; one at a time, the first gives up."""
    with open(path, "a") as f:
        f.write("x")
    deadline = time.monotonic() + timeout
    while os.path.getsize(path) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {os.path.getsize(path)} of {n} jobs ever ran at once")
        time.sleep(0.01)
    return n


def busy_record(path, tag, seconds):
    """Pure Python (a thread-mode stop can land), and says whether it was stopped."""
    with open(path, "a") as f:
        f.write(f"start {tag} {os.getpid()}\n")
    try:
        busy_loop(seconds)
    except BaseException as exc:
        with open(path, "a") as f:
            f.write(f"stopped {tag} {type(exc).__name__}\n")
        raise
    with open(path, "a") as f:
        f.write(f"done {tag} {os.getpid()}\n")
    return tag


def record(path, tag, seconds=0.0):
    """Append one line per execution, so tests can count runs."""
    with open(path, "a") as f:
        f.write(f"start {tag} {os.getpid()}\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"done {tag} {os.getpid()}\n")
    return tag


def fail_until(path, succeed_on):
    """Fail until this is the succeed_on-th attempt (counted in a file)."""
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        attempts = len(f.read())
    if attempts < succeed_on:
        raise RuntimeError(f"attempt {attempts} fails")
    return attempts


def progress():
    job = get_current_job()
    job.meta["progress"] = 50
    job.save_meta()
    return job.id


def pid():
    return os.getpid()


def unserializable():
    return object()


def crash_horse():
    os._exit(3)


def remember_success(job, connection, result):
    connection.set(f"callback:{job.id}", f"ok {result}")


def remember_failure(job, connection, exc_type, exc, tb):
    connection.set(f"callback:{job.id}", f"failed {exc_type.__name__}: {exc}")
    connection.incr(f"callback-calls:{job.id}")


def give_up(path):
    """Counts attempts; a failure no retry can fix."""
    from jobqueue import StopRetrying
    with open(path, "a") as f:
        f.write("x")
    raise StopRetrying("the resource is gone for good")


def rate_limited(path):
    from jobqueue import RetryLater
    with open(path, "a") as f:
        f.write("x")
    if len(open(path).read()) < 2:
        raise RetryLater("slow down", retry_after=0.6)
    return "ok"


COUNT = Script("tests.count", """
for _, a in ipairs(cjson.decode(ARGV[1])) do redis.call('HINCRBY', a[1], a[2], 1) end
return 1""")
BROKEN = Script("tests.broken", "return redis.call('NOSUCHCOMMAND')")


def count_then(key, field, then="return"):
    """Counts itself through Job.write_on_success, then returns, fails,
    also runs a broken script, or has Redis forget its scripts."""
    job = get_current_job()
    job.write_on_success(COUNT, key, field)
    if then == "fail":
        raise ValueError("failed after asking for a write")
    if then == "broken":
        job.write_on_success(BROKEN)
    if then in ("flush", "flush-others-reload"):  # Redis forgets every script (as on a restart) before this job's outcome goes
        job.connection.script_flush()
    if then == "flush-others-reload":  # another worker of the fleet has loaded jobqueue's own scripts since
        from jobqueue.scripts import SCRIPTS
        for name in ("finish", "fetch", "finish+fetch"):
            job.connection.script_load(SCRIPTS[name].source)
    return field


def broken_callback(job, connection, result):
    raise RuntimeError("the success callback broke")


def tracked(path, tag, seconds=0.0, step=0.01):
    """One line when an attempt starts and one when it ends (how), with the
    worker's pid and the attempt, so tests count executions and how many ran
    at once in one worker; a success is also counted through
    Job.write_on_success (hash 'writes', field tag). ``step=None`` sleeps in
    one C call, where a stop cannot land."""
    job = get_current_job()
    attempt = job.attempt if job is not None else 0
    started = False
    try:
        _line(path, f"start {tag} {_worker_pid()} {attempt}")
        started = True
        if step is None:
            time.sleep(seconds)
        else:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(step)
        _line(path, f"end {tag} {_worker_pid()} {attempt} ok")
    except BaseException as exc:  # a stop may land anywhere, even just after the "ok" line (tests.invariants copes)
        if started:
            _line(path, f"end {tag} {_worker_pid()} {attempt} {type(exc).__name__}")
        raise
    if job is not None:
        job.write_on_success(COUNT, "writes", tag)
    return tag


def slow_failure(job, connection, exc_type, exc, tb):
    """An on_failure callback that takes its time."""
    time.sleep(3)
    connection.set(f"callback:{job.id}", "slow callback done")


def _worker_pid():
    """pid and parent pid: a work horse's parent is its worker (tests.invariants sorts it out)."""
    return f"{os.getpid()} {os.getppid()}"


def _line(path, text):
    with open(path, "a") as f:
        f.write(text + "\n")


def count_success(job, connection, result):
    """An on_success callback that counts its calls."""
    connection.incr(f"success-calls:{job.id}")


class Planted:
    """Unpickling it runs ``touch path``: what a hostile pickled payload does."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


_resolver = None


def later(path, tag, seconds, fail=False):
    """Returns a Future that one shared timer thread resolves after
    ``seconds`` (or fails, with ``fail``): a job that holds no thread while it
    waits. Logs start/end lines like ``tracked``; a cancelled future logs
    "end ... cancelled" (a stop reached it)."""
    import heapq
    import threading
    from concurrent.futures import Future
    global _resolver
    if _resolver is None:
        _resolver = {"heap": [], "cond": threading.Condition()}

        def resolve():
            state = _resolver
            while True:
                with state["cond"]:
                    while not state["heap"] or state["heap"][0][0] > time.monotonic():
                        wait = state["heap"][0][0] - time.monotonic() if state["heap"] else None
                        state["cond"].wait(wait)
                    _, _, future, finish = heapq.heappop(state["heap"])
                finish(future)
        threading.Thread(target=resolve, daemon=True, name="resolver").start()
    job = get_current_job()
    attempt = job.attempt if job is not None else 0
    _line(path, f"start {tag} {_worker_pid()} {attempt}")
    future = Future()

    def finish(f):
        if f.cancelled():
            return
        _line(path, f"end {tag} {_worker_pid()} {attempt} {'failed' if fail else 'ok'}")
        if fail:
            f.set_exception(RuntimeError(f"{tag} failed on the resolver's thread"))
        else:
            f.set_result(tag)

    future.add_done_callback(lambda f: f.cancelled() and _line(path, f"end {tag} {_worker_pid()} {attempt} cancelled"))
    with _resolver["cond"]:
        heapq.heappush(_resolver["heap"], (time.monotonic() + seconds, id(future), future, finish))
        _resolver["cond"].notify()
    return future


def not_yet(path, times, delay):
    """Postponed ``times`` times (counted in ``path``), then done."""
    from jobqueue import Postpone
    with open(path, "a") as f:
        f.write("x")
    if len(open(path).read()) <= times:
        raise Postpone("the host is throttled", delay)
    return "ran"


class TimerLoop:
    """The smallest event loop a worker can drive (``Worker(loop=...)``):
    timers and a wake-up pipe. Notes which threads turned it."""

    def __init__(self):
        import threading
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._timers = []        # heap of [when, seq, fn, alive]
        self._seq = 0
        self.turned_on = set()   # thread idents that called run()
        self.called_on = set()   # thread idents that called on_loop's function
        self.lock = threading.Lock()

    def call_later(self, seconds, fn):
        import heapq
        with self.lock:
            self._seq += 1
            timer = [time.monotonic() + seconds, self._seq, fn, True]
            heapq.heappush(self._timers, timer)
        return timer

    def run(self, timeout):
        import heapq
        import select
        import threading
        self.turned_on.add(threading.get_ident())
        with self.lock:
            first = self._timers[0][0] - time.monotonic() if self._timers else timeout
        select.select([self._r], [], [], max(0.0, min(timeout, first)))
        try:
            os.read(self._r, 4096)
        except BlockingIOError:
            pass
        while True:
            with self.lock:
                if not self._timers or self._timers[0][0] > time.monotonic():
                    return any(t[3] for t in self._timers)
                timer = heapq.heappop(self._timers)
            if timer[3]:
                timer[2]()

    def wake(self):
        try:
            os.write(self._w, b"x")
        except BlockingIOError:
            pass


LOOP = None  # the TimerLoop a test hands its worker


def on_loop(path, tag, seconds, fail=False):
    """Starts its work on LOOP and returns: the loop resolves the Future after
    ``seconds``. A cancelled one is let go on the loop's next turn, which
    notes its tag in ``path``.released (as a transfer removes its part file)."""
    import threading
    from concurrent.futures import Future
    loop = LOOP
    loop.called_on.add(threading.get_ident())
    _line(path, f"start {tag} {_worker_pid()} 0")
    future = Future()

    def finish():
        if not future.cancelled():
            _line(path, f"end {tag} {_worker_pid()} 0 {'failed' if fail else 'ok'}")
            future.set_exception(RuntimeError(f"{tag} failed on the loop")) if fail else future.set_result(tag)

    timer = loop.call_later(seconds, finish)

    def let_go():
        timer[3] = False
        _line(f"{path}.released", tag)

    future.add_done_callback(lambda f: f.cancelled() and loop.call_later(0, let_go))
    return future
