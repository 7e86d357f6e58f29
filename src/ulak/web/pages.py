"""The shell every server-rendered page shares, and page-friendly errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# Page texts, in the languages ulak ships.
TEXTS: dict[str, dict[str, str]] = {
    "tr": {
        "unsubscribe_title": "E-posta aboneliğinden çık",
        "unsubscribe_question": (
            "{store} tarafından gönderilen kampanya e-postalarını artık almak istemiyor musunuz?"
        ),
        "unsubscribe_button": "Aboneliğimi iptal et",
        "unsubscribe_note": (
            "Sipariş ve kargo bilgilendirmeleri gibi hizmet e-postaları gelmeye devam eder."
        ),
        "unsubscribed_title": "Aboneliğiniz iptal edildi",
        "unsubscribed_body": "{store} size artık kampanya e-postası göndermeyecek.",
        "unsubscribe_sms_title": "SMS aboneliğinden çık",
        "unsubscribe_sms_question": (
            "{store} tarafından gönderilen kampanya SMS'lerini artık almak istemiyor musunuz?"
        ),
        "unsubscribe_sms_note": "Sipariş ve kargo bilgilendirmeleri gelmeye devam eder.",
        "unsubscribed_sms_body": "{store} size artık kampanya SMS'i göndermeyecek.",
        "sms_opt_out": "SMS iptali",
        "error_title": "Bir sorun oluştu",
        "invalid_link": "Bu bağlantı geçerli değil. Lütfen e-postadaki bağlantıyı yeniden açın.",
        "unavailable": "Şu anda yanıt veremiyoruz. Lütfen birkaç saniye sonra yeniden deneyin.",
    },
    "en": {
        "unsubscribe_title": "Unsubscribe from email",
        "unsubscribe_question": "Stop receiving marketing email from {store}?",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribe_note": (
            "Service email such as order and delivery updates will still reach you."
        ),
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed_body": "{store} will not send you marketing email any more.",
        "unsubscribe_sms_title": "Unsubscribe from text messages",
        "unsubscribe_sms_question": "Stop receiving marketing text messages from {store}?",
        "unsubscribe_sms_note": "Order and delivery updates will still reach you.",
        "unsubscribed_sms_body": "{store} will not send you marketing text messages any more.",
        "sms_opt_out": "Stop SMS",
        "error_title": "Something went wrong",
        "invalid_link": "This link is not valid. Please open the link in the email again.",
        "unavailable": "We cannot answer right now. Please try again in a few seconds.",
    },
}


def texts_for(locale: str) -> dict[str, str]:
    return TEXTS.get(locale.split("-")[0].split("_")[0].lower(), TEXTS["en"])


def browser_language(request: Request) -> str:
    """The first language of Accept-Language that ulak speaks, else English."""
    for part in request.headers.get("accept-language", "").split(","):
        language = part.split(";")[0].strip().split("-")[0].lower()
        if language in TEXTS:
            return language
    return "en"


def error_page(
    request: Request, *, locale: str, message: str, status_code: int, brand: str | None = None
) -> HTMLResponse:
    t = texts_for(locale)
    return render_page(
        request,
        "error.html",
        {"title": t["error_title"], "message": message, "lang": locale, "header": brand},
        status_code=status_code,
    )


def render_page(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)
