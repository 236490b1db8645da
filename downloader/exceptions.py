"""One exception hierarchy for the downloader; messages say what to do."""

from jobqueue import RetryLater, StopRetrying


class DownloaderError(Exception):
    """Base class of every error the downloader raises on purpose."""


class ConfigError(DownloaderError):
    """A config file or setting is invalid."""


class SourceError(DownloaderError):
    """The link source (API, links file) failed; nothing or only part was enqueued."""


class PermanentDownloadError(DownloaderError, StopRetrying):
    """A download no retry can fix (404, 403, too large, not an image, bad URL)."""


class TransientDownloadError(DownloaderError, RetryLater):
    """A download worth retrying (connection reset, timeout, 429, 5xx)."""


class WorkersGone(DownloaderError):
    """The workers a command started exited before its run was complete."""


class RunNotFound(DownloaderError):
    """No run with that id."""


class Unreachable(PermanentDownloadError):
    """This worker cannot reach the run's directory (not mounted, no --root)."""


class DiskError(PermanentDownloadError):
    """The download directory refuses bytes (full, read-only, not ours): no
    retry helps until someone fixes it, so the job fails at once."""

    def __init__(self, directory: str, cause: str) -> None:
        self.directory, self.cause = directory, cause
        super().__init__(f"cannot write to {directory}: {cause}; free space or fix its permissions, "
                         "then `downloader retry`")


class NotInRun(DownloaderError):
    """A URL given to `retry --url` is not one of the run's."""


class RunBusy(DownloaderError):
    """Another producer is enqueueing the run right now."""


class RunCanceled(DownloaderError):
    """The run was canceled (or deleted): nothing more is enqueued for it."""
