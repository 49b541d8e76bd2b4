"""Attack-report labels for full-length articles, by written rules (docs/labeling-guide.md).

A long article mentions attacks far more often than it reports one: policy pieces recall last
year's bombing, campaign coverage quotes a candidate on terrorism, a trial story retells the
crime. The guide's **main subject** rule therefore reads the headline first and the lead (the
first sentences of the body) second, and never the rest of the article. On top of the short-item
rules (training/data/attack_labels.py, applied to the headline and to the lead) come the long-article
cases: opinion and analysis pieces, politics about an attack, and mass shootings without a
political, religious or social aim (ordinary crime, as terrorism-incident databases count them).
"""

import re

from training.data.attack_labels import METHOD, Label, _rx, has_aim, label_item

# Opinion, analysis and commentary argue about events; they do not report one.
OPINION_TITLE = _rx(
    r"^\s*(?:opinion|analysis|commentary|editorial|column|op-ed|perspective|essay|review|fact check|the take)\b",
    r"^\s*[A-Z][A-Za-z .']{1,40}:\s+(?:opinion|analysis)\b",
)
OPINION_URL = _rx(
    r"/(?:opinions?|op-?eds?|commentary|editorials?|columns?|columnists?|blogs?|perspectives?|analysis|ideas|voices)/",
    r"[/-]op-?ed[/-]",
)
# A headline led by a politician, a party, a government or the media is politics, even when it is
# about an attack ("GOP rips Obama after Dallas shooting").
POLITICS_SUBJECT = _rx(
    r"\b(?:trump|clinton|hillary|obama|biden|sanders|cruz|rubio|pence|sessions|mcconnell|ryan|pelosi|schumer|"
    r"gop|democrats?|republicans?|dems|liberals?|conservatives?|progressives?|congress\w*|senators?|senate|"
    r"house|lawmakers?|white house|administration|president|candidates?|campaign|media|press|msnbc|fox|cnn|"
    r"nra|politicians?|left|right|pundits?|twitter|facebook|critics?|activists?|poll)\b"
)
# Words of politics, law and argument that, in a headline, make the attack the occasion, not the subject.
DEBATE_TITLE = _rx(
    r"\b(?:debate|politics|political|policy|ban|gun control|gun laws?|gun rights|second amendment|bill|law|"
    r"vote|hearing|rhetoric|narrative|blame[sd]?|slams?|rips?|criticiz\w+|responds?|response|reacts?|"
    r"reaction|tweets?|speech|lessons?|questions?|myths?|why|how|should|must|could|would|fuel|exploit\w*|"
    r"anniversar\w+|remember\w*|memorial|vigil|tributes?|mourn\w*|honou?r\w*|years? (?:after|later|since)|"
    r"documentary|film|book|movie|decades|sues?|suing|sued|lawsuit|liabilit\w*|testimony|testif\w*|explained|"
    r"conspiracy|documents|learn|outrage|divisions?|diplomacy|accused of|evidence|insight|missile|nuclear|"
    r"military unit|fly|flies|sabotage|riots?)\b",
    r"\?\s*$",
)
SHOOTING = _rx(
    r"\bshoot\w*|\bshot\b|\bgunm[ae]n\b|\bgunfire\b|\bopen(?:s|ed)? fire\b|\bshooters?\b|\bgunned\b"
)
OTHER_METHOD = _rx(
    r"\bbomb\w*|\bexplos\w+|\bblast\w*|\bdetonat\w+|\bstab\w*|\bknife\b|\bram(?:s|med|ming)\b|\btruck\b|\bvan\b|"
    r"\bhostages?\b|\bkidnap\w*|\bsuicide\b|\bgrenades?\b|\barson\b|\bbehead\w*"
)
# "Terrorism" and "terrorists" name a subject, "terror" and "attack" an event.
_EVENT_WORD = _rx(r"\b(?:attack\w*|terror(?!ism|ists?)|dead|killed|kills)\b")
# Lines that are page furniture, not the article: captions, video blurbs, share buttons.
_FURNITURE = re.compile(
    r"^\s*(?:close|photo|image|video|watch|advertisement|share|related|read more|getting your|"
    r"\(?(?:ap|reuters|afp|getty) (?:photo|images)\)?)\b",
    re.IGNORECASE,
)
# Violence named at all: the audit's "hard" stratum, and the full-length negatives always trained on.
VIOLENCE = _rx(
    r"bomb|explo|blast|gun|shoot|shot|kill|attack|kidnap|abduct|hostage|assassin|arson|massacre|militant|"
    r"terror|insurgent|wound|injur|dead|raid|strike|fire"
)
LEAD_WORDS = 60
# How far the aim of a shooting is looked for: the first paragraphs name a motive when one is known.
AIM_WORDS = 400


def lead_of(text: str, words: int = LEAD_WORDS) -> str:
    """The first sentences of the body, up to about ``words`` words, page furniture skipped."""
    kept: list[str] = []
    count = 0
    for line in text.splitlines():
        line = line.strip()
        if not line or _FURNITURE.search(line) or len(line.split()) < 6:
            continue
        kept.append(line)
        count += len(line.split())
        if count >= words:
            break
    lead = " ".join(kept).split()
    return " ".join(lead[:words])


def names_violence(title: str | None, text: str) -> bool:
    """Whether the headline or the lead names violence: the hard stratum that every hand reading
    covers and that training keeps whole."""
    return bool(VIOLENCE.search(f"{title} {lead_of(text)}"))


def _opinion(title: str, url: str | None) -> bool:
    return bool(OPINION_TITLE.search(title) or (url and OPINION_URL.search(url)))


def _politics_led(title: str) -> bool:
    """A politician, party or the media before the headline's first attack word."""
    event = METHOD.search(title) or re.search(r"(?i)\battack|terror|shooting", title)
    head = title[: event.start()] if event else title
    return bool(POLITICS_SUBJECT.search(head)) or bool(DEBATE_TITLE.search(title))


def label_article(title: str | None, text: str, url: str | None = None) -> Label:
    """The attack-report label of a full-length article and the rule that decided it (first match wins)."""
    title = (title or "").strip()
    lead = lead_of(text)
    if _opinion(title, url):
        return Label(0, "opinion")
    by_title = label_item(title) if title else Label(0, "no_title")
    by_lead = label_item(lead)
    if by_title.label == 1:
        decided = Label(1, f"title_{by_title.rule}")
    elif by_lead.label == 1 and title and (METHOD.search(title) or _EVENT_WORD.search(title)):
        # A headline with an attack word the short rules could not place ("Terror along the
        # Riviera"): the lead says what happened.
        decided = Label(1, f"lead_{by_lead.rule}")
    else:
        return Label(0, "title_not_attack")
    if _politics_led(title):
        return Label(0, "politics_or_debate")
    opening = " ".join(text.split()[:AIM_WORDS])
    if (
        SHOOTING.search(f"{title} {lead}")
        and not OTHER_METHOD.search(title)
        and not has_aim(f"{title} {opening}")
    ):
        return Label(0, "shooting_without_aim")
    return decided
