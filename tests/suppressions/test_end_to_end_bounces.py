"""As deployed: `ulak serve` with its sender process and a real SMTP server, and
`ulak inbound` as the bounce domain's MX. A refusal at SMTP time and a DSN to the VERP
address each end on the store's suppression list."""

from __future__ import annotations

import json
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    ULAK,
    Server,
    SmtpSink,
    create_store_with_cli,
    free_port,
    order_placed,
    ulak_cli,
    wait_until,
)

BOUNCES = "bounces.aysenin-dukkani.example"
SAMPLES = Path(__file__).parent.parent / "samples" / "dsn"


@pytest.fixture
def server_env(database_url: str, smtp_sink: SmtpSink) -> dict[str, str]:
    return {
        "ULAK_DATABASE_URL": database_url,
        "ULAK_SMTP_URL": smtp_sink.url,
        "ULAK_LOG_LEVEL": "warning",
        "ULAK_POLL_SECONDS": "0.2",
        "ULAK_BOUNCE_DOMAIN": BOUNCES,
    }


@pytest.fixture
def inbound(server_env: dict[str, str]) -> Iterator[int]:
    """`ulak inbound` as a subprocess, on a free port."""
    import os
    import socket
    import time

    port = free_port()
    process = subprocess.Popen(
        [str(ULAK), "inbound", "--listen", f"127.0.0.1:{port}"],
        env={**os.environ, **server_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "ulak inbound exited"
                assert time.monotonic() < deadline, "ulak inbound did not listen"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def suppressed(env: dict[str, str], store: int) -> list[tuple[str, str, str]]:
    result = ulak_cli("suppressions", "list", "--store", str(store), "--json", env=env)
    assert result.returncode == 0, result.stderr
    return [(s["address"], s["reason"], s["detail"]) for s in json.loads(result.stdout)]


def post(server: Server, key: str, event: dict[str, Any]) -> None:
    response = httpx.post(
        f"{server.url}/v1/events", json=event, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 202, response.text


def test_a_refusal_and_a_dsn_suppress_as_deployed(
    server: Server, server_env: dict[str, str], smtp_sink: SmtpSink, inbound: int
) -> None:
    store = create_store_with_cli(server_env)
    server.start()
    smtp_sink.refusals = ["550 5.1.1 <ayse@example.com>: no such user"]
    post(
        server, store["api_key"], order_placed("1001", customer_id="c-1", email="ayse@example.com")
    )
    wait_until(
        lambda: (
            suppressed(server_env, store["id"])
            == [
                (
                    "ayse@example.com",
                    "hard_bounce",
                    "5.1.1 message refused: 550 5.1.1 <ayse@example.com>: no such user",
                )
            ]
        ),
        # Each look is a CLI process (seconds of imports on a busy machine).
        60,
        "the refused address on the list",
    )
    post(server, store["api_key"], order_placed("1002", customer_id="c-2", email="can@example.com"))
    wait_until(lambda: len(smtp_sink.received) == 1, 20, "can's confirmation")
    verp = smtp_sink.received[0].mail_from
    assert verp.startswith("bounce+")
    assert verp.endswith(f"@{BOUNCES}")
    assert smtp_sink.received[0].message["X-Ulak-Message"] == verp[len("bounce+") :].split("@")[0]
    # Can's mailbox server accepted it, then bounced it: a real Postfix DSN to the VERP
    # address reaches `ulak inbound`.
    with smtplib.SMTP("127.0.0.1", inbound) as smtp:
        # On the wire with SMTP's CRLF, as the bouncing server sends it.
        raw = (SAMPLES / "postfix-01.eml").read_bytes().replace(b"\n", b"\r\n")
        smtp.sendmail("", [verp], raw)
    wait_until(
        lambda: (
            [a for a, _, _ in suppressed(server_env, store["id"])]
            == ["ayse@example.com", "can@example.com"]
        ),
        20,
        "the bounced address on the list",
    )
