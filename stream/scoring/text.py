"""Text cleaning, applied identically when training and when scoring.

The trainer imports this module and the bundle records PREPROCESSING_VERSION, so the scorer
refuses a bundle whose cleaning it cannot reproduce. Change the rules, bump the version.

The rules exist because of what the corpora carry: MUC reports are upper case and open with
FBIS datelines and source tags (``SAN SALVADOR, 3 JAN 90 -- [REPORT] [COPREFA] [TEXT]``),
Reuters has datelines and a trailing ``REUTER``, AG News has ``AP -`` prefixes and broken
entities. A model trained on the raw text learns those instead of the content.
"""

import html
import re
import unicodedata

PREPROCESSING_VERSION = "1"

_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"

# FBIS (MUC) header: place, date, optional source, "--", then bracketed tags up to the text.
_FBIS_DATELINE = re.compile(
    rf"^\s*[A-Z][A-Z .'/()-]{{0,60}},\s+(?:\d{{1,2}}\s+(?:{_MONTHS})[A-Z]*\.?(?:\s+\d{{2,4}})?|NO DATE)"
    r"(?:\s*[(\[][^)\]]{0,80}[)\]])?\s*--\s*(?:\[[^\]]{0,400}\]\s*)*"
)
# Reuters: "SALVADOR, Feb 26 - ".
_REUTERS_DATELINE = re.compile(r"^\s*[A-Z][A-Za-z .'/()&-]{0,60},\s+[A-Z][a-z]{2,8}\.?\s+\d{1,2}\s+-\s+")
# Wire prefixes: "AP - ", "BAGHDAD (Reuters) - ", "SPACE.com - TORONTO, Canada -- ".
_WIRE_PREFIX = re.compile(
    r"^\s*(?:[A-Z0-9(][\w.,'&/()]*\s+){0,4}?[A-Z0-9(][\w.,'&/()]*\s*(?:--|-|\u2013|\u2014)\s+"
)
_TRAILER = re.compile(r"\s*\b(?:REUTER|Reuter)\s*$")
_AGENCY_SUFFIX = re.compile(
    r"\s*\((?:AP|AFP|Reuters|REUTERS|Reuter|SPACE\.com|Canadian Press|CP|UPI|DPA|EFE|"
    r"washingtonpost\.com|TechWeb|Ziff Davis|PC World|NewsFactor|Forbes\.com|"
    r"Investor's Business Daily|[A-Za-z]+\.com)\)\s*$"
)
# Transcription markers FBIS inserts into broadcasts; speaker tags and acronyms stay.
_FBIS_MARKERS = re.compile(
    r"\[(?:TEXT|REPORT|REPORTER|CONTINUED|BEGIN RECORDING|END RECORDING|PASSAGE OMITTED|"
    r"WORDS? INDISTINCT|QUESTION INDISTINCT|PASSAGE INDISTINCT|SENTENCE INDISTINCT|"
    r"CHANGES THOUGHT|APPLAUSE|AS HEARD|NOT FURTHER IDENTIFIED|SIGNED|EXCERPTS?|"
    r"EDITORIAL REPORT|MODERATOR|COMMENTARY|COMMUNIQUE|STATEMENT|SPEECH|ARTICLE|QUOTE|"
    r"END QUOTE|UNQUOTE|DATELINE)\]",
    re.IGNORECASE,
)
# "#36;" is how AG News stores "&#36;" (a dollar sign).
_BROKEN_ENTITY = re.compile(r"(?<![&\w])#(\d{2,5});")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"]+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# Conservative on purpose: years, ranges and amounts ("1989-1990", "1,750") must survive.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}"
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}"
    r"|\b\d{3}[.-]\d{3}[.-]\d{4}"
    r"|\b\d{3}-\d{4})\b"
)
# Everything that is not a word character, whitespace or ordinary punctuation.
_SPECIAL = re.compile(r"[^\w\s.,;:!?'\"()\[\]%$£€¥&/-]")
_SPACE = re.compile(r"\s+")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def _mostly_upper(text: str) -> bool:
    sample = text[:400]
    return sum(map(str.isupper, sample)) > 0.5 * sum(map(str.isalpha, sample))


def _control_to_space(match: re.Match[str]) -> str:
    char = match.group()
    return " " if unicodedata.category(char)[0] == "C" else char


def _strip_prefixes(text: str) -> str:
    # Twice: a report may quote another agency's dispatch, dateline and all.
    text, fbis = _FBIS_DATELINE.subn("", text, count=1)
    text = _FBIS_DATELINE.sub("", text, count=1)
    text = _REUTERS_DATELINE.sub("", text, count=1)
    if fbis or _mostly_upper(text):
        # In all-caps text every word looks like a place name: "A CAR BOMB -- WHICH ...".
        return text
    for _ in range(2):  # "SPACE.com - TORONTO, Canada -- " carries two
        prefix = _WIRE_PREFIX.match(text)
        if prefix is None or len(prefix.group(0)) > 60:
            break
        text = text[prefix.end() :]
    return text


def clean(text: str, lower: bool = True) -> str:
    """Normalise one field of an article: the rules in the module docstring, then lower case.

    ``lower=False`` keeps the case, for text people read and for what needs names (an alert's
    snippet: incident grouping tells events apart by their capitalized names).
    """
    text = html.unescape(text)
    text = _BROKEN_ENTITY.sub(lambda m: chr(int(m.group(1))), text)
    text = unicodedata.normalize("NFKC", text)
    # Control and format characters become spaces; only characters outside printable ASCII
    # need the (slow) category lookup.
    text = _NOT_PRINTABLE_ASCII.sub(_control_to_space, text)
    text = _strip_prefixes(text)
    text = _TRAILER.sub("", text)
    text = _AGENCY_SUFFIX.sub("", text)
    text = _FBIS_MARKERS.sub(" ", text)
    text = _URL.sub(" [url] ", text)
    text = _EMAIL.sub(" [email] ", text)
    text = _PHONE.sub(" [phone] ", text)
    text = _SPECIAL.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    return text.lower() if lower else text


def article_text(title: str | None, text: str) -> str:
    """The single string a model sees for an article: cleaned title, then cleaned body."""
    return compose(clean(title) if title else "", clean(text))


def compose(head: str, body: str) -> str:
    """Join an already cleaned title and body as article_text does."""
    if not head:
        return body
    if not body:
        return head
    sep = " " if head[-1] in ".!?" else ". "
    return f"{head}{sep}{body}"
