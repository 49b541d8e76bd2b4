"""The names that tell two reports of the same kind of event apart."""

import numpy as np
import pytest

from tests.unit.subscribers.alerts import unit


def test_names_tell_apart_two_reports_of_the_same_kind_of_event() -> None:
    from stream.subscribers.lexical import combine, name_vectors, names

    assert names("A car bomb in Kabul killed 12, the Taliban said.") == ["kabul", "12", "taliban"]
    kabul, kabul_again, baghdad = name_vectors(
        [
            "A car bomb in Kabul killed 12.",
            "Twelve dead as car bomb hits Kabul.",
            "A car bomb in Baghdad killed 20.",
        ]
    )
    assert float(kabul @ kabul_again) > 0.5
    assert float(kabul @ baghdad) == pytest.approx(0.0, abs=1e-6)
    embeddings = np.stack([unit(1, 0), unit(0.8, 0.6)])
    lexical = np.stack([unit(1, 0, 0), unit(0, 1, 0)])
    joined = combine(embeddings, lexical, 0.5)
    assert float(joined[0] @ joined[1]) == pytest.approx(0.5 * 0.8 + 0.5 * 0.0, abs=1e-6)
    assert float(np.linalg.norm(joined[0])) == pytest.approx(1.0, abs=1e-6)
