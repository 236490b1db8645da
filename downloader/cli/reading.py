"""What `fetch` reads and what it makes of it: the source (its flags, or the
run it resumes), the progress lines while reading, then names (layout.py)
and the archive (archive.py): the (URL, job extras) pairs to enqueue."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import click

from ..archive import Archive
from ..config import Settings
from ..exceptions import SourceError
from ..layout import Layout
from ..producer import BATCH, extras
from ..runs import Runs
from ..sources import Item
from ..sources.imgur import ImgurFetch, from_spec
from ..sources.links_file import LinksFile

AUTO_RESUME = ("links", "imgur")  # sources read the same way again (stdin is not: it may be other links)


@dataclass
class Want:
    """What the user asked for on the command line."""
    urls: tuple[str, ...] = ()
    client_id: str | None = None
    links_path: str | None = None
    search: str | None = None
    section: str | None = None
    sort: str | None = None
    window: str | None = None
    pages: int | None = None
    videos: bool = False
    strict: bool = False
    chatty: bool = True


@dataclass
class Plan:
    """What one fetch read, and what it left out (counted as it streams)."""
    description: str
    spec: dict
    read: int = 0
    archived: int = 0
    cut_short: str | None = None


def resumed_spec(runs: Runs, run_id: str) -> dict:
    """How run ``run_id`` read its links (raises RunNotFound)."""
    runs.progress(run_id)
    return json.loads(runs.info(run_id, "spec")[0] or "{}")


def source_for(want: Want, spec: dict, settings: Settings, resume_id: str | None) -> LinksFile | ImgurFetch:
    """From the flags; with ``spec`` (a resumed run), from how that run read its links."""
    imgur_flags = want.urls or want.search or want.section
    if want.links_path and (want.client_id and imgur_flags):
        raise click.UsageError("use either --links FILE or Imgur URLs / --search / --section, not both")
    say = (lambda line: click.echo(line, err=True))
    timeout = (settings.connect_timeout, settings.read_timeout)
    if want.links_path or (spec.get("kind") == "links" and not want.client_id):
        return LinksFile(want.links_path or spec["path"], want.strict)
    if not want.client_id:
        raise click.UsageError(how_to_give_links(resume_id, spec, bool(imgur_flags)))
    if spec.get("kind") == "imgur" and not imgur_flags:
        source = from_spec(spec, want.client_id, timeout, say, settings.api_url if settings.api_url != Settings.api_url
                           else None)
    else:
        source = ImgurFetch(want.client_id, settings.api_url, want.urls, want.search, want.section, want.sort,
                            want.window, want.pages, want.videos, timeout, say, gallery_pages=settings.pages)
    if want.chatty:
        source.on_page = lambda description, page: click.echo(
            f"Read page {page} of {description}: {source.found} link(s) so far", err=True)
    return source


def how_to_give_links(resume_id: str | None, spec: dict, imgur_flags: bool = False) -> str:
    if imgur_flags:
        return "Imgur URLs, --search and --section read the Imgur API: give --client-id X (or DOWNLOADER_CLIENT_ID)"
    if not resume_id:
        return "say where the links come from: --client-id X (Imgur API; with URLs, --search or --section) " \
               "or --links FILE"
    if spec.get("kind") == "stdin":
        return f"run {resume_id} read its links from stdin: give them again with --links - (or --links FILE)"
    if spec.get("kind") == "imgur":
        return f"run {resume_id} reads the Imgur API: give the client id again (--client-id X; it is not stored)"
    return f"run {resume_id} was not made by `downloader fetch`: give its links with --links FILE"


def batches(source: LinksFile | ImgurFetch, layout: dict, runs: Runs, plan: Plan) -> Iterator[list[tuple[str, dict]]]:
    """The source's items as they are read, BATCH at a time: named, minus
    what the archive holds, as (URL, job extras) pairs. Memory
    stays bounded whatever the source's size (names are kept for Imgur runs,
    to resolve collisions). Names are decided for every item, archived or
    not, so a file keeps its name whatever the archive leaves out. A source
    that fails has what it read so far yielded first, then its error raised.
    A URL read twice is enqueued once: write_batch drops it, in a batch or
    across batches (the run's URL map)."""
    names = Layout(layout.get("name") or None)
    archive = layout.get("archive") or ""
    metadata = bool(layout.get("metadata"))
    store = Archive(runs.connection, archive, runs.archive_keys()) if archive else None
    chunk: list[Item] = []

    def ready() -> list[tuple[str, dict]]:
        named = [(item, extras(item, names, metadata, archive)) for item in chunk]  # (write_batch drops repeats)
        if store is not None:
            kept = {id(item) for item in store.missing(chunk)}
            plan.archived += len(named) - len(kept)
            named = [(item, more) for item, more in named if id(item) in kept]
        chunk.clear()
        return [(item.url, more) for item, more in named]

    try:
        for item in source.items():
            plan.read += 1
            chunk.append(item)
            if len(chunk) == BATCH:
                yield ready()
    except SourceError:
        if chunk:
            yield ready()
        raise
    if chunk:
        yield ready()
    plan.cut_short = getattr(source, "cut_short", None)
    rejected, count = getattr(source, "rejected", []), getattr(source, "rejected_count", 0)
    if count:
        shown = "".join(f"\n  line {n}: {line!r} ({why})" for n, line, why in rejected)
        more = f"\n  ... and {count - len(rejected)} more" if count > len(rejected) else ""
        click.echo(f"Skipped {count} line(s) of {source.description} that are not http(s) URLs "
                   f"(--strict makes this an error):{shown}{more}", err=True)
