"""`wirewatch tail`'s lines."""


def test_tail_shows_the_incident_an_alert_joined_or_opened() -> None:
    from stream.devtools.tail import format_alert

    joined = {"id": "rt-1", "score": 0.95, "title": "Kabul blast", "publisher": "RT"}
    joined |= {"incident_id": "inc-1", "similarity": 0.83}
    assert "incident inc-1 (joined at 0.83) | RT" in format_alert(joined)
    assert "incident inc-2 (new)" in format_alert({**joined, "incident_id": "inc-2", "similarity": None})
    assert "incident" not in format_alert({"id": "ap-1", "score": 0.9, "title": "Kabul blast"})
