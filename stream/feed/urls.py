"""URLs from feeds: which ones may be fetched, and the normalised form an article id is made of."""

import hashlib
import re
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from stream.schemas import MAX_ID_LENGTH, http_url_or_none

# Query parameters that say how a reader came to the story, not which story it is.
_TRACKING = re.compile(
    r"^(utm_\w*|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|_ga|_gl|igshid|yclid|"
    r"ocid|cmpid|icid|ns_\w+|at_medium|at_campaign|at_custom\d*|xtor|smid|smtyp|s_cid|mkt_tok|"
    r"__twitter_impression|ref_src|spm)$",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def fetchable(url: object) -> str | None:
    """The URL when it may be fetched: http(s), a host, no whitespace or control characters."""
    return http_url_or_none(url)


def resolve(base: str, link: object) -> str | None:
    """A feed's link made absolute against the feed's URL, when the result may be fetched."""
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        return fetchable(urljoin(base, link.strip()))
    except ValueError:
        return None


def normalise(url: str) -> str | None:
    """The canonical form of an http(s) URL: lower-case scheme and host, no default port, no
    fragment, no tracking parameters, the remaining parameters sorted. None when not http(s)."""
    if fetchable(url) is None:
        return None
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    )
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def article_id(link: str | None, guid: object, feed_url: str) -> str | None:
    """The stable id of an entry: its normalised URL, else its guid (a URL guid normalised too).

    A guid that is no URL is unique within its feed only, so it is qualified by the feed. Ids
    longer than the article schema allows become a digest of themselves.
    """
    candidate: str | None = None
    if link is not None:
        candidate = normalise(link)
    if candidate is None and isinstance(guid, str) and guid.strip():
        guid = guid.strip()
        candidate = normalise(guid) if fetchable(guid) else f"guid:{normalise(feed_url) or feed_url}#{guid}"
    if candidate is None:
        return None
    if len(candidate) > MAX_ID_LENGTH:
        return "sha256:" + hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).hexdigest()
    return candidate


def same_site(a: str, b: str) -> bool:
    """Whether two URLs share a host (a page's canonical link is believed only for its own host)."""
    try:
        return (urlsplit(a).hostname or "").lower() == (urlsplit(b).hostname or "").lower() != ""
    except ValueError:
        return False
