"""Errors of the transfer path, mapped to the downloader's own: what a retry
can fix (TransientDownloadError), what it cannot (PermanentDownloadError),
and the disk refusing to take bytes (DiskError), which is not the network's
fault and no retry fixes until someone frees space or fixes permissions."""

from __future__ import annotations

import errno

import pycurl

from ..exceptions import DiskError, PermanentDownloadError, TransientDownloadError

# the disk says no: out of space or quota, read-only, not ours to write
DISK_REFUSALS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}

_PERMANENT = {
    pycurl.E_UNSUPPORTED_PROTOCOL: "unsupported protocol (only http and https are fetched)",
    pycurl.E_URL_MALFORMAT: "malformed URL",
    pycurl.E_PEER_FAILED_VERIFICATION: "TLS certificate not trusted",
    pycurl.E_SSL_CACERT_BADFILE: "TLS: the CA bundle cannot be read (check SSL_CERT_FILE)",
}


def disk_error(exc: OSError, directory: str) -> Exception:
    """A DiskError for a refusal (it fails the job at once, and the worker
    holds off that directory); any other OSError (EIO...) stays transient."""
    what = errno.errorcode.get(exc.errno or 0, "?")
    if exc.errno in DISK_REFUSALS:
        return DiskError(directory, f"{exc.strerror} ({what})")
    return TransientDownloadError(f"disk error in {directory}: {exc.strerror or exc} ({what})")


def curl_error(code: int, text: str, url: str, timeouts: tuple[float, float]) -> Exception:
    if code in _PERMANENT:
        return PermanentDownloadError(f"{_PERMANENT[code]}: {text} ({url})")
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return TransientDownloadError(f"network error: timed out (connect {timeouts[0]:g} s, read {timeouts[1]:g} s)")
    return TransientDownloadError(f"network error: {text or 'curl error ' + str(code)}")
