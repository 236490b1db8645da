"""`downloader archive`: the download archive's size, export, import, removal."""

from __future__ import annotations

import sys

import click

from ..archive import Archive
from ..config import Settings
from ..exceptions import ConfigError
from . import common, main, runs_for


@main.group()
def archive() -> None:
    """The download archive: which items (imgur:ID) are done, for every run.

    \b
    downloader archive count [--archive NAME]
    downloader archive export FILE [--archive NAME]     one id a line; '-' = stdout
    downloader archive import FILE [--archive NAME]     ids exported from another archive or Redis
    downloader archive forget [--archive NAME]          delete it: later fetches download everything again
    """


def _named(settings: Settings, name: str | None) -> Archive:
    name = name or settings.archive
    if not name:
        raise ConfigError("no archive named: give --archive NAME (the setting `archive` is empty)")
    runs = runs_for(settings)
    return Archive(runs.connection, name, runs.archive_keys())


_option = click.option("--archive", "name", metavar="NAME", help="which archive [the setting `archive`: default]")


@archive.command()
@common
@_option
def count(settings: Settings, name: str | None) -> None:
    """How many items the archive holds."""
    found = _named(settings, name)
    click.echo(f"Archive {found.name!r}: {len(found)} item(s).")


@archive.command("export")
@common
@_option
@click.argument("path", metavar="FILE")
def export_(settings: Settings, name: str | None, path: str) -> None:
    """Write the archive's ids to FILE, one a line ('-': stdout)."""
    found = _named(settings, name)
    written = 0
    out = sys.stdout if path == "-" else open(path, "w", encoding="utf-8")
    try:
        for value in found.export():
            out.write(value + "\n")
            written += 1
    finally:
        if out is not sys.stdout:
            out.close()
    if path != "-":
        click.echo(f"Wrote {written} id(s) of archive {found.name!r} to {path}.", err=True)


@archive.command("import")
@common
@_option
@click.argument("path", metavar="FILE")
def import_(settings: Settings, name: str | None, path: str) -> None:
    """Add the ids in FILE (one a line, '#' comments skipped) to the archive."""
    found = _named(settings, name)
    try:
        with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as lines:
            ids = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; give a UTF-8 text file of ids, one a line") from None
    bad = [i for i in ids if ":" not in i]
    if bad:
        raise ConfigError(f"{path}: {len(bad)} line(s) are not archive ids (like imgur:ID), e.g. {bad[0][:80]!r}; "
                          "nothing was imported")
    click.echo(f"Imported {found.add(ids)} new id(s) into archive {found.name!r} ({len(ids)} read).")


@archive.command()
@common
@_option
def forget(settings: Settings, name: str | None) -> None:
    """Delete the archive."""
    found = _named(settings, name)
    size = len(found)
    found.forget()
    click.echo(f"Archive {found.name!r} deleted ({size} item(s)).")
