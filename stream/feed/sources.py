"""The feed list: `--feeds FILE` (one URL a line, or OPML) and `--feed URL`.

An error names the file and the line, and stops the command before anything is fetched.
"""

from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from stream.errors import ConfigError
from stream.feed.urls import fetchable, normalise

MAX_FEED_FILE_BYTES = 20_000_000


@dataclass(frozen=True)
class Feed:
    url: str  # as given: what is fetched
    key: str  # normalised: what tells two entries of the list apart


def _feed(url: str, where: str) -> Feed:
    if fetchable(url) is None:
        shown = url if len(url) <= 200 else url[:200] + "..."
        raise ConfigError(f"{where}: not an http(s) feed URL: {shown!r}")
    key = normalise(url)
    assert key is not None  # fetchable URLs normalise
    return Feed(url, key)


def _opml(data: bytes, path: Path) -> list[Feed]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else "?")
        raise ConfigError(f"{path}, line {line}: not a valid OPML file ({exc.msg})") from None
    feeds = []
    for outline in root.iter("outline"):
        url = outline.get("xmlUrl")
        if url is None:
            continue  # a folder of outlines
        feeds.append(_feed(url.strip(), f"{path}, line {outline.sourceline}"))
    if not feeds:
        raise ConfigError(f"{path}, line 1: an OPML file with no outline carrying an xmlUrl")
    return feeds


def read_feed_file(path: Path) -> list[Feed]:
    """The feeds of a file: OPML when it starts with '<', else one URL a line (# comments)."""
    try:
        size = path.stat().st_size
        if size > MAX_FEED_FILE_BYTES:
            raise ConfigError(f"{path}: {size} bytes; a feed list holds at most {MAX_FEED_FILE_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--feeds {path}: cannot read it ({exc.strerror or exc})") from None
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return _opml(data, path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {bad}: not UTF-8 text") from None
    feeds = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            feeds.append(_feed(line, f"{path}, line {number}"))
    if not feeds:
        raise ConfigError(f"{path}: no feed URL in it (one http(s) URL a line, or an OPML file)")
    return feeds


def feed_list(files: list[Path], urls: list[str]) -> list[Feed]:
    """Every feed of the files and of --feed, once each (by normalised URL), in order."""
    feeds = [f for path in files for f in read_feed_file(path)]
    feeds += [_feed(url.strip(), "--feed") for url in urls]
    unique: dict[str, Feed] = {}
    for feed in feeds:
        unique.setdefault(feed.key, feed)
    return list(unique.values())
