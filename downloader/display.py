"""How a run's progress is shown: a bar on a terminal, that keeps what
matters most (done, failed, rate) however narrow it is, with other lines
printed above it; on anything else (a pipe, CI) a plain line every few
seconds, which a log keeps readable."""

from __future__ import annotations

import shutil
import sys
import time

from tqdm import tqdm

PLAIN_EVERY = 5.0  # seconds between plain progress lines


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def fields(done: int, skipped: int, failed: int, nbytes: int, rate: float) -> list[str]:
    """The counts to show, most important first."""
    return [f"done {done}", f"failed {failed}", f"{human_bytes(rate)}/s", f"skipped {skipped}", human_bytes(nbytes)]


class Display:
    """The bar on a terminal, plain lines elsewhere."""

    def __init__(self, run_id: str, total: int, settled: int, quiet: bool = False) -> None:
        """``quiet``: no progress at all (lines for the user still go to stderr)."""
        self.run_id, self.total, self.settled, self.quiet = run_id, total, settled, quiet
        self.tty = sys.stderr.isatty() and not quiet
        self._bar: tqdm | None = None  # drawn at the first show(), with its counts
        self._fields: list[str] = []
        self._next_plain = 0.0

    def say(self, line: str) -> None:
        """A line above the bar (never through it)."""
        if self.tty:
            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def grow(self, total: int) -> None:
        """The run's total as it is now (a run still being enqueued grows)."""
        if total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total

    def show(self, settled: int, shown: list[str]) -> None:
        self.settled, self._fields = settled, shown
        if self.quiet:
            return
        if self.tty:
            width = shutil.get_terminal_size((80, 24)).columns
            room = width - 2 * len(str(self.total)) - 22  # percentage, a 10-cell bar, the counts
            kept: list[str] = []
            for item in shown:
                if len(", ".join(kept + [item])) > room:
                    break
                kept.append(item)
            if self._bar is None:
                self._bar = tqdm(total=self.total, initial=settled, unit="file", file=sys.stderr, dynamic_ncols=True,
                                 bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}",
                                 postfix=", ".join(kept))
            self._bar.set_postfix_str(", ".join(kept), refresh=False)
            self._bar.update(settled - self._bar.n)
        elif time.monotonic() >= self._next_plain:
            self._next_plain = time.monotonic() + PLAIN_EVERY
            self._plain()

    def _plain(self) -> None:
        percent = 100 * self.settled // self.total if self.total else 100
        print(f"run {self.run_id}: {percent}% ({self.settled}/{self.total}), {', '.join(self._fields)}",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.settled >= self.total and not self.quiet:
            self._plain()  # the last word, whatever the clock says
