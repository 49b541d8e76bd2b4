"""The labeling rules of docs/labeling-guide.md, on the guide's own borderline cases."""

import pytest

from training.data.attack_labels import label_item

ATTACKS = [
    ("A suicide bombing at a funeral in the Pakistani city of Quetta kills at least 28 people.", None),
    ("Militants attack a Pakistani Army base in the Lakki Marwat District, killing at least 23.", None),
    ("Gunmen ambush a bus killing nine people and wounding six others in western Ethiopia.", None),
    ("One person is killed after security forces open fire on protesters in Bouziane, Tunisia.", None),
    (
        "A gunman who had posted white supremacist threats opens fire at a college in Houston, killing three.",
        None,
    ),
    ("Marco Antonio Leal, the Mayor of Hidalgo, is shot dead while driving his car.", "Law and crime"),
    ("ISIL claims responsibility for kidnapping three African Christians in Libya.", None),
    ("Two people are arrested in New York City for allegedly planning a terrorist attack.", "Law and crime"),
    (
        "The trial of the accused mastermind of the September 11 attacks starts at Guantanamo Bay.",
        "Law and crime",
    ),
    ("Three rockets are fired at Israeli communities from Gaza.", "Armed conflicts and attacks"),
    ("A blast at a market in the Nigerian city of Yola kills at least 32 people.", None),
    ("A roadside bomb kills a reporter covering the battle for Mosul.", "Armed conflicts and attacks"),
]
NOT_ATTACKS = [
    # A lone gunman at a school with no aim named: ordinary crime, as terrorism databases count it.
    (
        "At least three people are injured after a gunman opens fire at the campus of a college in Houston.",
        None,
    ),
    ("Turkish warplanes carry out strikes against PKK hideouts in northern Iraq.", None),
    ("An airstrike by the Saudi-led coalition kills 25 civilians in a market in Sanaa.", None),
    ("Pro-Gaddafi forces are besieging the towns of Misrata and Zawiya.", None),
    ("Two people are killed in a gang-related shooting outside a restaurant in Salinas.", "Law and crime"),
    ("18 miners are killed in an explosion at a coal mine in Russia.", "Disasters and accidents"),
    ("Five people are killed by a gas explosion in an apartment complex.", "Disasters and accidents"),
    ("The parliament passes a new anti-terrorism law.", "Politics and elections"),
    ("Thousands march in memory of those killed in the 1972 Bloody Sunday massacre.", None),
    ("Bears attack villages in Orissa, India, killing eight people.", None),
    ("The United Kingdom Home Office is subjected to a cyber attack by hackers.", None),
    ("Ethiopian forces kill 123 members of a rebel front in the east of the country.", None),
    ("The team scores a last-minute goal to win the cup final.", "Sports"),
]


@pytest.mark.parametrize(("text", "section"), ATTACKS)
def test_attack_reports_are_positive(text: str, section: str | None) -> None:
    decided = label_item(text, section)
    assert decided.label == 1, decided.rule


@pytest.mark.parametrize(("text", "section"), NOT_ATTACKS)
def test_battles_strikes_crime_accidents_policy_and_memory_are_negative(
    text: str, section: str | None
) -> None:
    decided = label_item(text, section)
    assert decided.label == 0, decided.rule


def test_each_label_names_the_rule_that_decided_it() -> None:
    assert label_item("Turkish warplanes strike PKK hideouts.").rule == "air_or_artillery"
    assert label_item("The central bank raises interest rates.").rule == "no_attack"
