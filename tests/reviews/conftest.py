from __future__ import annotations

import pytest

from ulak.reviews import api


@pytest.fixture(autouse=True)
def fresh_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request of a test sees the database as it is now (the public routes keep an
    answer a few seconds; `test_public.py` checks that they do)."""
    monkeypatch.setattr(api, "CACHE_SECONDS", 0.0)
