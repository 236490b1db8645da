"""The tutorial's download job, as written there (urllib, whole body in memory),
run by RQ in the benchmark; and its sequential loop with one requests.Session."""

import os
from pathlib import Path
from urllib.request import urlopen


def download_link(directory, link):
    download_path = Path(directory) / os.path.basename(link)
    with urlopen(link) as image, download_path.open("wb") as f:
        f.write(image.read())


def sequential(directory, links):
    import requests
    with requests.Session() as session:
        for link in links:
            response = session.get(link)
            response.raise_for_status()  # (the tutorial omits it; a saved error page is no download)
            (Path(directory) / os.path.basename(link)).write_bytes(response.content)
