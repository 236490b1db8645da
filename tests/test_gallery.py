"""Real galleries: every Imgur URL kind against the demo server, name
templates (hostile titles included), metadata sidecars, the download archive."""

import hashlib
import json
import time

import pytest

from downloader.demo_server import DemoServer
from downloader.exceptions import ConfigError, SourceError
from downloader.layout import Layout
from downloader.sources import Item
from downloader.sources.imgur import ImgurFetch
from tests.test_downloader_e2e import downloader, run_id_of
from downloader.runs import Runs
from tests.test_sources import ScriptedApi


@pytest.fixture(scope="module")
def demo():
    server = DemoServer(images=80, videos=4, per_page=10).start()   # listings of several pages
    yield server
    server.stop()


def ids(fetch):
    return [item.id for item in fetch.items()]


def expanded(demo, posts):
    """The image ids a list of demo posts holds, albums expanded, in order."""
    out = []
    for post in posts:
        out += [m["id"] for m in demo.gallery.albums[post["id"]]] if post["is_album"] else \
            ([] if post["type"].startswith("video/") else [post["id"]])
    return out


def test_every_imgur_url_kind_reads_what_it_names(demo):
    g = demo.gallery
    fetch = lambda *urls, **kw: ImgurFetch("demo", demo.url, urls, **kw)
    assert ids(fetch("https://i.imgur.com/img0.png", "imgur.com/img1")) == ["img0", "img1"]
    album = list(fetch("https://imgur.com/a/album6").items())
    assert [(i.id, i.album_id, i.album_title, i.index) for i in album] == \
        [(f"a6x{k}", "album6", "Demo album 6", k + 1) for k in range(3)]
    assert ids(fetch("imgur.com/a/album20")) == ["a20x0", "a20x1", "a20x2"]      # listed in part: asked in full
    assert ids(fetch("https://imgur.com/gallery/album13")) == ["a13x0", "a13x1", "a13x2"]
    assert ids(fetch("https://imgur.com/gallery/some-title-words-img2")) == ["img2"]
    mine = [p for p in g.items if p["account_url"] == "user1"]
    assert ids(fetch("https://imgur.com/user/user1")) == expanded(demo, mine) and len(mine) > 1
    cats = [p for p in g.items if {"name": "cats"} in p["tags"]]
    assert ids(fetch("https://imgur.com/t/cats")) == expanded(demo, cats)
    pics = [p for p in g.items if p["section"] == "pics" and not p["is_album"]]
    assert ids(fetch("https://imgur.com/r/pics")) == expanded(demo, pics)
    assert ids(fetch(search="album")) == expanded(demo, [p for p in g.items if p["is_album"]])
    assert ids(fetch(section="top")) == expanded(demo, g.items[::-1][:10])        # one page unless --pages
    assert ids(fetch(section="hot", pages=3)) == expanded(demo, g.items[:30])
    assert len(mine) > 10 and len(cats) > 10 and len(pics) > 10                   # read to their last page
    user = list(fetch("imgur.com/user/user0").items())[0]
    assert (user.author, user.kind, user.date) == ("user0", "user", "2023-11-14")


def test_videos_only_when_asked_and_gifv_comes_as_mp4(demo):
    assert not [i for i in ImgurFetch("demo", demo.url, section="hot", pages=9).items() if i.video]
    videos = [i for i in ImgurFetch("demo", demo.url, section="hot", pages=9, videos=True).items() if i.video]
    assert [i.url.rsplit("/", 1)[1] for i in videos] == ["vid0.mp4", "vid1.mp4", "vid2.mp4", "vid3.mp4"]
    assert {i.ext for i in videos} == {"mp4"}


def test_urls_that_are_not_imgur_kinds_are_refused_with_the_kinds_there_are(demo):
    for url in ("https://example.com/a/x", "https://imgur.com/", "https://imgur.com/upload/now", "ftp://imgur.com/a"):
        with pytest.raises(SourceError, match="album .imgur.com/a/ID."):
            ImgurFetch("demo", demo.url, [url])
    with pytest.raises(SourceError, match="does not exist .HTTP 404."):
        list(ImgurFetch("demo", demo.url, ["imgur.com/a/noSuchAlbum"]).items())


def test_a_low_quota_slows_the_reader_down_and_says_so_and_none_left_stops_it():
    demo = DemoServer(images=10, quota=6, limit=100, reset_in=10).start()
    said = []
    try:
        source = ImgurFetch("demo", demo.url, ["imgur.com/img0", "imgur.com/img1"], say=said.append)
        start = time.monotonic()
        assert ids(source) == ["img0", "img1"]
        assert time.monotonic() - start >= 1.0        # 5 requests left for 10 s: the second waits about 2 s
        assert len(said) == 1 and "quota is low (5 of 100 requests left" in said[0] and "slowing down" in said[0]
        demo.quota, demo.reset_in = 0, 3600
        spent = ImgurFetch("demo", demo.url, ["imgur.com/user/user0", "imgur.com/img1"])
        assert len(list(spent.items())) <= 1 + 3 and spent.cut_short and "used up until" in spent.cut_short
    finally:
        demo.stop()


def test_a_quota_used_up_leaves_the_run_open_for_a_resume(redis_server, r, tmp_path):
    demo = DemoServer(images=10, quota=1, limit=100).start()    # one answer, then nothing left until an hour on
    try:
        out = downloader(redis_server, "fetch", "imgur.com/user/user0", "--client-id", "demo", "--api-url", demo.url,
                         "--no-wait", "--dir", str(tmp_path))
        assert out.returncode == 0, out.stderr
        run_id = run_id_of(out.stdout)
        assert Runs(r).progress(run_id).interrupted                   # open: not sealed with what little was read
        assert "the Imgur API quota is used up until" in out.stderr and f"fetch --resume {run_id}` reads the rest" \
            in out.stderr
        demo.quota = 100
        resumed = downloader(redis_server, "fetch", "--resume", run_id, "--client-id", "demo", "--no-wait")
        assert resumed.returncode == 0 and "resumed" in resumed.stdout, resumed.stderr
        mine = [p for p in demo.gallery.items if p["account_url"] == "user0"]
        assert r.hlen(f"downloader:run:{run_id}:urls") == len(expanded(demo, mine))
        assert json.loads(downloader(redis_server, "status", run_id, "--json").stdout)["state"] == "enqueued"
    finally:
        demo.stop()


def test_a_429_now_and_then_is_waited_out(redis_server, r, tmp_path):
    demo = DemoServer(images=30, throttle_every=3).start()
    try:
        out = downloader(redis_server, "fetch", "imgur.com/user/user0", "imgur.com/t/dogs", "--client-id", "demo",
                         "--api-url", demo.url, "--no-wait", "--dir", str(tmp_path))
        assert out.returncode == 0 and demo.api_requests >= 3, out.stderr
    finally:
        demo.stop()


HOSTILE = ["../../etc/passwd", "/", "a\x00b\x1b[31mred", "x" * 300, "evil\u202egnp.exe", "Cats", "cats", ".", "..",
           " .hidden. ", "con:aux?*"]


def test_hostile_titles_become_safe_single_names_inside_the_run_and_never_collide():
    layout = Layout("{album_title}/{title}.{ext}")
    names = [layout.name(Item(f"https://i.example/{n}.jpg", id=f"id{n}", title=title, album_id="al",
                              album_title=title, index=n, ext="jpg", kind="album"))
             for n, title in enumerate(HOSTILE)]
    for name in names:
        parts = name.split("/")
        assert 1 <= len(parts) <= 2 and all(p and p not in (".", "..") and not p.startswith(".") for p in parts)
        assert all(len(p.encode()) <= 120 and not any(ord(c) < 32 or c in "\u202e\\:?*" for c in p) for p in parts)
    assert len({n.casefold() for n in names}) == len(names)   # "Cats" and "cats" do not share a file
    again = Layout("{album_title}/{title}.{ext}")
    assert names == [again.name(Item(f"https://i.example/{n}.jpg", id=f"id{n}", title=title, album_id="al",
                                     album_title=title, index=n, ext="jpg", kind="album"))
                     for n, title in enumerate(HOSTILE)]      # every machine, every time: the same names
    for bad in ("../{id}", "/abs/{id}", "{id}/../{ext}", "{nope}", "{id"):
        with pytest.raises(ConfigError, match="--name"):
            Layout(bad)


def test_a_gallery_lands_in_album_folders_with_sidecars_and_hostile_titles_stay_inside(redis_server, r, tmp_path):
    images = [{"id": f"h{n}", "type": "image/png", "link": None, "title": title, "datetime": 1_700_000_000}
              for n, title in enumerate(HOSTILE)]
    web = DemoServer(images=1)                                     # serves the image bytes at /i/ID.png
    web.start()
    for image in images:
        image["link"] = f"{web.url}/i/{image['id']}.png"
    api = ScriptedApi({"/3/album/evil": [(200, {}, {"data": {"id": "evil", "title": "../../escape", "images": images,
                                                             "account_url": "mallory"}})]})
    folder = tmp_path / "run"
    try:
        out = downloader(redis_server, "fetch", "imgur.com/a/evil", "--client-id", "x", "--api-url", api.url,
                         "--workers", "1", "--metadata", "--dir", str(folder),
                         "--name", "{album_title}/{index:02}-{title}.{ext}")
        assert out.returncode == 0, out.stdout + out.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]          # nothing outside the run's directory
        (album,) = folder.iterdir()
        assert album.name == "_.._escape" and album.is_dir()                 # its title, made one safe name
        files = sorted(p for p in album.iterdir() if not p.name.endswith(".json"))
        assert len(files) == len(HOSTILE) and files[0].name.startswith("01-")
        for f in files:
            side = json.loads((album / (f.name + ".json")).read_text())
            assert side["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest() and side["size"] == f.stat().st_size
            assert side["url"].startswith(web.url) and side["album_title"] == "../../escape"
            assert side["author"] == "mallory" and side["date"] == "2023-11-14"
    finally:
        api.stop()
        web.stop()


def test_the_archive_skips_what_any_run_or_worker_finished_and_travels_as_a_file(redis_server, r, tmp_path):
    demo = DemoServer(images=40).start()
    common = ["--client-id", "demo", "--api-url", demo.url, "--dir", str(tmp_path / "dl")]
    try:
        first = downloader(redis_server, "fetch", "imgur.com/user/user1", *common, "--workers", "2")
        assert first.returncode == 0, first.stderr
        user1 = expanded(demo, [p for p in demo.gallery.items if p["account_url"] == "user1"])
        cats = expanded(demo, [p for p in demo.gallery.items if {"name": "cats"} in p["tags"]])
        both = set(user1) & set(cats)
        assert both and set(cats) - both                             # the tag overlaps the user's posts
        second = downloader(redis_server, "fetch", "imgur.com/t/cats", *common, "--workers", "2")
        assert second.returncode == 0
        assert f"{len(cats) - len(both)} download(s) enqueued" in second.stdout
        assert f"{len(both)} already in archive 'default'" in second.stdout
        assert r.scard("downloader:archive:default") == len(set(user1) | set(cats))

        exported = tmp_path / "archive.txt"
        assert downloader(redis_server, "archive", "export", str(exported)).returncode == 0
        assert sorted(exported.read_text().split()) == sorted(f"imgur:{i}" for i in set(user1) | set(cats))
        assert downloader(redis_server, "archive", "forget").returncode == 0
        imported = downloader(redis_server, "archive", "import", str(exported), "--archive", "other")
        assert f"Imported {len(set(user1) | set(cats))} new id(s) into archive 'other'" in imported.stdout
        third = downloader(redis_server, "fetch", "imgur.com/t/cats", *common, "--archive", "other", "--no-wait")
        assert "gave nothing new to download" in third.stdout
        bad = tmp_path / "bad.txt"
        bad.write_text("imgur:ok\nnot an id\n")
        refused = downloader(redis_server, "archive", "import", str(bad))
        assert refused.returncode == 1 and "not archive ids" in refused.stderr and r.scard("downloader:archive:default") == 0
    finally:
        demo.stop()


def test_failed_downloads_are_not_archived_and_links_files_never_are(redis_server, r, tmp_path):
    api = ScriptedApi({"/3/album/mixed": [(200, {}, {"data": {"id": "mixed", "title": "m", "images": [
        {"id": "gone", "type": "image/png", "link": "http://127.0.0.1:9/gone.png"}]}})]})
    try:
        out = downloader(redis_server, "fetch", "imgur.com/a/mixed", "--client-id", "x", "--api-url", api.url,
                         "--workers", "1", "--dir", str(tmp_path), DOWNLOADER_RETRIES="0")
        assert out.returncode == 1 and r.scard("downloader:archive:default") == 0
    finally:
        api.stop()


def test_a_job_whose_name_would_leave_the_directory_or_follow_a_symlink_writes_nothing(redis_server, r, tmp_path):
    from downloader.config import Settings
    from downloader.producer import Producer
    from downloader.runs import Runs
    web = DemoServer(images=1).start()
    folder, outside = tmp_path / "dl", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "linked").symlink_to(outside)                          # planted: an album folder that points away
    runs = Runs(r)
    names = {"../escape.png": "unsafe file name", "a/../../escape.png": "unsafe file name",
             "linked/x.png": "is a symlink or a file", ".hidden/x.png": "unsafe file name"}
    try:
        with Producer.new(runs, "test", {"kind": "api"}, Settings(queue="hostile", dir=str(folder)), 4) as producer:
            producer.add([(f"{web.url}/i/img{n}.png", {"name": name}) for n, name in enumerate(names)])
            producer.seal(4)
        out = downloader(redis_server, "work", "--burst", "--queue", "hostile", "--dir", str(folder))
        assert out.returncode == 0
        reasons = runs.failures(producer.run_id)
        for n, why in enumerate(names.values()):
            assert why in reasons[f"{web.url}/i/img{n}.png"], reasons
        assert list(outside.iterdir()) == [] and not (tmp_path / "escape.png").exists()
        assert sorted(p.name for p in folder.iterdir()) == ["linked"]
    finally:
        web.stop()


def test_a_file_keeps_its_name_whatever_the_archive_leaves_out(redis_server, r, tmp_path):
    web = DemoServer(images=1).start()
    twins = [{"id": f"t{n}", "type": "image/png", "link": f"{web.url}/i/t{n}.png", "title": title}
             for n, title in enumerate(["Cat", "cat"])]
    api = ScriptedApi({"/3/album/twins": [(200, {}, {"data": {"id": "twins", "title": "t", "images": twins}})]})
    (tmp_path / "have.txt").write_text("imgur:t0\n")                 # the first is archived already
    try:
        assert downloader(redis_server, "archive", "import", str(tmp_path / "have.txt")).returncode == 0
        out = downloader(redis_server, "fetch", "imgur.com/a/twins", "--client-id", "x", "--api-url", api.url,
                         "--workers", "1", "--dir", str(tmp_path / "dl"), "--name", "{title}.{ext}")
        assert out.returncode == 0 and "1 already in archive" in out.stdout, out.stdout + out.stderr
        assert [p.name for p in (tmp_path / "dl").iterdir()] == ["cat-t1.png"]   # as if "Cat.png" were there
    finally:
        api.stop()
        web.stop()
