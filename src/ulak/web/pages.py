"""The shell every server-rendered page shares, and page-friendly errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, select_autoescape

from ulak.stores.models import Store
from ulak.web.links import BadLink

_PACKAGE = Path(__file__).parent.parent

# The shell's own templates by name ("base.html"); a feature's page templates, kept in its
# own `page_templates/` folder, by the feature's name ("reviews/form.html").
templates = Jinja2Templates(
    env=Environment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(Path(__file__).parent / "templates"),
                PrefixLoader(
                    {
                        folder.parent.name: FileSystemLoader(folder)
                        for folder in sorted(_PACKAGE.glob("*/page_templates"))
                    }
                ),
            ]
        ),
        autoescape=select_autoescape(default=True),
    )
)

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
        "expired_link": (
            "Bu bağlantının süresi doldu. Yardım için mağazayla iletişime geçebilirsiniz."
        ),
        "help": "Yardım",
        "help_intro": "Sorunuz mu var? Bize ulaşın:",
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
        "expired_link": "This link has expired. The shop can help you if you contact them.",
        "help": "Help",
        "help_intro": "Questions? Reach us:",
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


def store_page(store: Store, locale: str) -> dict[str, Any]:
    """What the page shell shows of a store: its name, brand and help channels, and the
    shell's texts in `locale`. A customer page's context starts from this."""
    return {
        "lang": locale,
        "store_name": store.name,
        "header": store.name,
        "brand_color": store.brand_color,
        "logo_url": store.logo_url,
        "help": {
            "email": store.contact_email,
            "phone": store.contact_phone,
            "website": store.website_url,
        },
        "shell": texts_for(locale),
    }


def bad_link_page(request: Request, error: BadLink) -> HTMLResponse:
    """A friendly page for a link that names nothing: the store's brand and language when
    the path named a real store, else the browser's language and no brand."""
    store = error.store
    locale = store.locale if store is not None else browser_language(request)
    t = texts_for(locale)
    context: dict[str, Any] = store_page(store, locale) if store is not None else {"lang": locale}
    context |= {
        "title": t["error_title"],
        "message": t["expired_link" if error.expired else "invalid_link"],
    }
    return render_page(request, "error.html", context, status_code=error.status_code)
