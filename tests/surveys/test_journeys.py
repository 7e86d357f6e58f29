"""The shipped `satisfaction-survey` and `satisfaction-make-good` journeys through `ulak
simulate`: when the survey is asked, and what each kind of answer sets off, at exact
moments, and nothing else."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.journeys.test_simulation import PLACED, event, run, scenario, sent
from ulak.journeys.simulation import Timeline
from ulak.surveys import service
from ulak.surveys.service import SurveySetup

TO = "ayse@example.com"
SHOP = "shop@example.com"  # a scenario's store's contact address
JOURNEYS = "[satisfaction-survey, satisfaction-make-good]"
DELIVERED = event("+0s", "order.delivered", "{order_id: '1001'}")
ASKED = ("2026-03-04T10:00:00+03:00", "satisfaction-survey", "survey_request", TO)


def answered(at: str, kind: str, score: int, comment: str | None = None) -> str:
    extra = f", comment: {comment!r}" if comment else ""
    return event(
        at, "survey.answered", f"{{order_id: '1001', kind: {kind}, score: {score}{extra}}}"
    )


def setup(
    monkeypatch: pytest.MonkeyPatch,
    *,
    kind: str = "csat",
    delay_days: int = 2,
    make_good: bool = False,
) -> None:
    """The store's survey settings, as `ulak surveys settings` would set them."""

    async def configured(session: Any, *, store_id: int) -> SurveySetup:
        return SurveySetup(store_id, kind, delay_days, make_good)

    monkeypatch.setattr(service, "survey_setup", configured)


def survey(*events: str, consent: bool = True) -> Timeline:
    kwargs: dict[str, Any] = {} if consent else {"consent": None}
    return run(scenario(PLACED, DELIVERED, *events, journeys=JOURNEYS, run_until="+12d", **kwargs))


def test_no_answer_is_asked_once_two_days_after_delivery_in_the_daytime() -> None:
    timeline = survey()
    # Delivered Monday 09:00; two days later is 09:00, before the 10:00 that asking waits for.
    assert sent(timeline) == [ASKED]
    (message,) = timeline.messages
    assert message.subject == "#1001 numaralı siparişiniz nasıldı?"
    assert re.findall(
        r"^(\d): http://127\.0\.0\.1:8000/p/1/survey/\S+\?score=\1$", message.text, re.M
    ) == [
        "1",
        "2",
        "3",
        "4",
        "5",
    ]
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])
    assert timeline.failed_events == []


def test_the_stores_delay_and_a_night_delivery() -> None:
    late = DELIVERED.replace('"+0s"', '"+14h30m"')  # 23:30 on Monday
    timeline = run(scenario(PLACED, late, journeys=JOURNEYS, run_until="+12d"))
    assert sent(timeline) == [
        ("2026-03-05T10:00:00+03:00", "satisfaction-survey", "survey_request", TO)
    ]


def test_a_delay_of_five_days(monkeypatch: pytest.MonkeyPatch) -> None:
    setup(monkeypatch, delay_days=5)
    timeline = survey()
    assert sent(timeline) == [
        ("2026-03-07T10:00:00+03:00", "satisfaction-survey", "survey_request", TO)
    ]


def test_a_detractor_gets_an_apology_and_the_shop_an_alert_at_once() -> None:
    timeline = survey(answered("+3d2h", "csat", 1, "Kupa kırık geldi."))
    # Answered Thursday 11:00: the shop at once, the customer an hour later.
    assert sent(timeline) == [
        ASKED,
        ("2026-03-05T11:00:00+03:00", None, "shop_alert_survey", SHOP),
        ("2026-03-05T12:00:00+03:00", "satisfaction-survey", "survey_follow_up", TO),
    ]
    _, alert, apology = timeline.messages
    assert alert.subject == "ulak: memnun olmayan bir anket yanıtı, 1/5 (Ayşe)"
    assert "Kupa kırık geldi." in alert.text
    assert apology.subject == "#1001 numaralı siparişiniz için özür dileriz"
    assert re.search(
        r"iade talebinizi buradan oluşturabilirsiniz: \S+/p/1/return/\S+", apology.text
    )
    assert "indirim" not in apology.text
    assert (timeline.unsent, timeline.endings, timeline.unfinished) == ([], [], [])


def test_a_detractor_gets_a_make_good_code_a_day_later_when_the_store_gives_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup(monkeypatch, make_good=True)
    timeline = survey(answered("+3d2h", "csat", 2))
    assert sent(timeline) == [
        ASKED,
        ("2026-03-05T11:00:00+03:00", None, "shop_alert_survey", SHOP),
        ("2026-03-05T12:00:00+03:00", "satisfaction-survey", "survey_follow_up", TO),
        ("2026-03-06T11:00:00+03:00", "satisfaction-make-good", "survey_make_good", TO),
    ]
    code = timeline.messages[-1]
    assert code.subject == "#1001 numaralı sipariş için küçük bir özür"
    # The store's default make-good template: 15 % for 30 days.
    assert re.search(
        r"Bir sonraki siparişinizde %15 indirim: OZUR-\w{4}-\w{4}\n"
        r"Kod bir kez kullanılabilir, 5 Nisan 2026 tarihine kadar\.",
        code.text,
    ), code.text
    assert "Yorum bırakmadı." in timeline.messages[1].text


def test_no_make_good_code_without_consent_to_commercial_email(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup(monkeypatch, make_good=True)
    timeline = survey(answered("+3d2h", "csat", 1), consent=False)
    # The survey and the apology are informational; the code is not.
    assert [m.template for m in timeline.messages] == [
        "survey_request",
        "shop_alert_survey",
        "survey_follow_up",
    ]
    assert [(u.journey, u.template) for u in timeline.unsent] == [
        ("satisfaction-make-good", "survey_make_good")
    ]


def test_a_passive_gets_nothing_more() -> None:
    timeline = survey(answered("+3d2h", "csat", 3))
    assert sent(timeline) == [ASKED]
    assert (timeline.unsent, timeline.unfinished) == ([], [])


def test_a_promoter_is_asked_for_a_review() -> None:
    timeline = survey(answered("+3d2h", "csat", 5, "Harika!"))
    assert sent(timeline) == [
        ASKED,
        ("2026-03-05T12:00:00+03:00", "satisfaction-survey", "survey_review", TO),
    ]
    review = timeline.messages[-1]
    assert review.subject == "#1001 numaralı siparişinizi beğenmenize sevindik"
    assert re.search(r"Birkaç kelime yeter: \S+/p/1/review/\S+", review.text)


def test_an_answer_after_seven_days_is_kept_but_sets_nothing_off() -> None:
    timeline = survey(answered("+10d", "csat", 1))
    # The shop still hears of it; the journey stopped waiting.
    assert sent(timeline) == [
        ASKED,
        ("2026-03-12T09:00:00+03:00", None, "shop_alert_survey", SHOP),
    ]


def test_nps_asks_0_to_10_and_splits_at_6_and_9(monkeypatch: pytest.MonkeyPatch) -> None:
    setup(monkeypatch, kind="nps")
    asked = survey()
    assert re.findall(r"^(\d+): \S+\?score=\1$", asked.messages[0].text, re.M) == [
        str(n) for n in range(11)
    ]
    assert "tavsiye etme olasılığınız" in asked.messages[0].text
    for score, templates in [
        (6, ["survey_request", "shop_alert_survey", "survey_follow_up"]),
        (7, ["survey_request"]),
        (8, ["survey_request"]),
        (9, ["survey_request", "survey_review"]),
        (10, ["survey_request", "survey_review"]),
    ]:
        timeline = survey(answered("+3d2h", "nps", score))
        assert [m.template for m in timeline.messages] == templates, score
