"""The full-length article rules of docs/labeling-guide.md: headline and lead decide the main subject."""

import pytest

from training.data.article_labels import label_article, lead_of

pytestmark = pytest.mark.unit

REPORT = (
    "A suicide bomber detonated explosives at the arrivals hall of the city's airport on Tuesday, "
    "killing at least 31 people and wounding dozens, officials said. The Islamic State claimed "
    "responsibility hours later.\n"
)
POLITICS = (
    "The president's allies and his critics traded accusations on Sunday over immigration, taxes and "
    "the budget, with the election weeks away and the polls tightening in every swing state.\n"
)


def test_a_report_that_opens_with_the_attack_and_goes_on_to_politics_is_an_attack() -> None:
    decided = label_article(
        "At least 31 killed in terror attacks at Brussels airport", REPORT + POLITICS * 20
    )
    assert decided.label == 1, decided


def test_a_politics_story_that_recalls_an_attack_further_down_is_not() -> None:
    text = POLITICS + POLITICS + REPORT  # the attack is told, but only after the lead
    assert label_article("Senate heads for a showdown over the budget", text).label == 0


@pytest.mark.parametrize(
    ("title", "url", "rule"),
    [
        ("OPINION: The Orlando massacre teaches us we must act", None, "opinion"),
        ("Why the travel ban will not stop the next attack", "https://example.com/opinion/ban", "opinion"),
        ("GOP rips Obama after Dallas shooting kills five officers", None, "politics_or_debate"),
        ("Mandalay Bay owner sues victims of Las Vegas mass shooting", None, "politics_or_debate"),
        ("Ten years after the bombing, the city remembers", None, "politics_or_debate"),
    ],
)
def test_opinion_reaction_litigation_and_memory_are_not_attack_reports(
    title: str, url: str | None, rule: str
) -> None:
    decided = label_article(title, REPORT + POLITICS, url)
    assert (decided.label, decided.rule) == (0, rule)


SCHOOL = (
    "A gunman opened fire at a high school on Friday morning, killing ten people, before he was taken "
    "into custody, the sheriff said. Investigators are still looking for a motive.\n"
)


def test_a_mass_shooting_without_an_aim_is_ordinary_crime() -> None:
    decided = label_article("Gunman kills 10 at Texas high school", SCHOOL + POLITICS)
    assert decided == decided.__class__(0, "shooting_without_aim")
    denied = SCHOOL.replace(
        "Investigators", "Police said there was no indication of terrorism. Investigators"
    )
    assert label_article("Gunman kills 10 at Texas high school", denied + POLITICS).label == 0


def test_a_shooting_with_a_political_or_religious_aim_is_an_attack() -> None:
    aimed = SCHOOL.replace(
        "Investigators are still looking for a motive.", "He had posted anti-Semitic threats."
    )
    assert label_article("Gunman kills 10 at Texas high school", aimed + POLITICS).label == 1


def test_the_lead_skips_captions_and_stops_at_its_word_budget() -> None:
    text = "CLOSE\nPhoto: the scene\n" + REPORT + POLITICS * 5
    lead = lead_of(text, words=20)
    assert lead.startswith("A suicide bomber")
    assert len(lead.split()) == 20
