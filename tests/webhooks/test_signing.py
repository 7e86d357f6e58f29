"""The signature is Standard Webhooks': the reference library verifies it, and refuses
it for a changed body, another secret, or an old timestamp."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ulak.webhooks.signing import headers, new_secret

BODY = b'{"type":"survey.answered","timestamp":"2026-11-23T09:00:00Z","data":{"score":9}}'


def test_the_reference_library_verifies_what_ulak_signs() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    signed = headers(secret, webhook_id="evt_7", timestamp=int(time.time()), body=BODY)
    assert Webhook(secret).verify(BODY, signed) == {
        "type": "survey.answered",
        "timestamp": "2026-11-23T09:00:00Z",
        "data": {"score": 9},
    }
    for body, key, at in [
        (BODY.replace(b"9", b"0"), secret, int(time.time())),
        (BODY, new_secret(), int(time.time())),
        (BODY, secret, int(time.time()) - 600),
    ]:
        with pytest.raises(WebhookVerificationError):
            Webhook(key).verify(body, headers(secret, webhook_id="evt_7", timestamp=at, body=BODY))


def test_a_known_vector() -> None:
    # The example the Standard Webhooks (and Svix) documentation publishes: its secret,
    # id, timestamp and body, and the signature it gives for them.
    signed = headers(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )
    assert signed["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
