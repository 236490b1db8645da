"""downloader: a whole image gallery downloaded fast, by as many workers as you like.

`downloader fetch` turns a source (the Imgur API or a links file) into one
`download_link` job per unique URL on a jobqueue queue and shows progress;
`downloader work` runs download workers anywhere that reaches the same Redis
and the same directory. Delivery is at-least-once and `download_link` is
idempotent: a file already complete is skipped, never written twice.
"""

__version__ = "0.1.0"
