"""An article page into its main text (trafilatura), and the language of a text (py3langid)."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import py3langid
import trafilatura

from stream.feed.parse import clean_text

_LANG = re.compile(r"^[a-z]{2,3}$")
# Below this many characters a language guess is noise; the feed's declared language is used instead.
MIN_LANG_CHARS = 40
LANG_SAMPLE_CHARS = 5000


@dataclass(frozen=True)
class Page:
    text: str
    title: str | None
    published_at: str | None
    canonical: str | None


def extract_page(html: bytes, url: str) -> Page | None:
    """The page's main text and metadata; None when nothing article-like is in it."""
    try:
        document = trafilatura.bare_extraction(
            html, url=url, with_metadata=True, include_comments=False, include_tables=False
        )
    except Exception:  # trafilatura on hostile HTML: a page we cannot read is a fallback, not a crash
        return None
    if document is None:
        return None
    text = clean_text(str(getattr(document, "text", "") or ""))
    if not text:
        return None
    title = getattr(document, "title", None)
    canonical = getattr(document, "url", None)
    return Page(
        text=text,
        title=" ".join(title.split()) if isinstance(title, str) and title.strip() else None,
        published_at=_page_date(getattr(document, "date", None)),
        canonical=canonical if isinstance(canonical, str) else None,
    )


def _page_date(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def normalise_lang(value: object) -> str | None:
    """'en-US', 'EN', 'en_gb' -> 'en'; anything else that is no language code -> None."""
    if not isinstance(value, str):
        return None
    code = value.strip().lower().replace("_", "-").split("-")[0]
    return code if _LANG.match(code) else None


def detect_lang(text: str, declared: str | None = None) -> str | None:
    """The language of the text, by py3langid; the feed's declared one when the text is too short."""
    if len(text) < MIN_LANG_CHARS:
        return normalise_lang(declared)
    try:
        code, _score = py3langid.classify(text[:LANG_SAMPLE_CHARS])
    except Exception:
        return normalise_lang(declared)
    return normalise_lang(code)
