"""Local fake SMS providers: real HTTP servers on 127.0.0.1 (Starlette under uvicorn, in
a thread of their own) that speak Netgsm's, İleti Merkezi's and Twilio's documented
formats (shared/gateways.md) and nothing more.

Each fake checks every request as the provider documents it: a request the real
provider would not understand is answered 400 and noted in `problems` (the `running`
helper fails the test on any). Wrong credentials get the provider's own answer. A fake
keeps the messages it accepted (`accepted`), answers delivery-report polls for them from
what a test set with `report(...)`, and can post reports back where the provider does.
`answer_next` scripts the next answer of an endpoint (an error, a 5xx, a delay longer
than the client's timeout)."""

from __future__ import annotations

from tests.sms_fakes.base import Answer, CallbackSink, FakeProvider, Recorded, SentSms, running
from tests.sms_fakes.iletimerkezi import IletiMerkeziFake
from tests.sms_fakes.netgsm import NetgsmFake
from tests.sms_fakes.twilio import TwilioFake

__all__ = [
    "Answer",
    "CallbackSink",
    "FakeProvider",
    "IletiMerkeziFake",
    "NetgsmFake",
    "Recorded",
    "SentSms",
    "TwilioFake",
    "running",
]
