"""Languages: a score carries its article's lang, and the scorer counts those its bundle was not trained on."""

import json

from stream.feed.extract import detect_lang, normalise_lang
from stream.kafka.records import Incoming
from stream.schemas import Score
from stream.serve.process import base_lang
from tests.unit.fakes import processor, settings


def _message(i: int, lang: str | None) -> Incoming:
    body = {"id": f"a{i}", "title": "t", "text": "a quiet day in the city council", "lang": lang}
    return Incoming("articles", 0, i, f"a{i}".encode(), json.dumps(body).encode(), [], None)


def test_the_score_carries_the_lang_and_other_languages_are_counted() -> None:
    english_only = processor(settings())  # a bundle that names no languages: English only
    langs = ["en", "en-GB", "fr", None, "de", "fr", "<script>"]
    result = english_only.process([_message(i, lang) for i, lang in enumerate(langs)])
    scores = [Score.model_validate_json(o.value) for o in result.outputs if o.kind == "score"]
    assert [s.lang for s in scores] == langs
    assert dict(result.unsupported_langs) == {"fr": 2, "de": 1, "other": 1}


def test_a_bundle_trained_on_several_languages_counts_only_the_rest() -> None:
    multilingual = processor(settings(), languages=["en", "FR"])
    result = multilingual.process([_message(i, lang) for i, lang in enumerate(["fr", "de", "en"])])
    assert dict(result.unsupported_langs) == {"de": 1}


def test_language_detection_on_text_and_the_declared_language_for_short_text() -> None:
    assert (
        detect_lang("Le gouvernement a annoncé mardi une nouvelle réforme des retraites contestée.") == "fr"
    )
    assert detect_lang("The council met on Tuesday to discuss the new flood defences for the town.") == "en"
    assert detect_lang("Kurz", declared="de-AT") == "de"
    assert normalise_lang("EN_gb") == "en"
    assert normalise_lang("javascript:") is None
    assert base_lang(" ") is None
