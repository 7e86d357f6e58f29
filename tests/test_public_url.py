"""The links in every email start with ULAK_PUBLIC_URL: outside development it must be
https, and `ulak worker` / `ulak serve` say so when they start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ulak.config import Settings


@pytest.mark.parametrize(
    "url",
    [
        "https://ulak.dukkan.example",
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "http://[::1]:8000",
        "http://ulak.localhost",
        "",  # http://127.0.0.1:8000, the default host and port
    ],
)
def test_https_or_this_machine_needs_no_warning(url: str) -> None:
    assert Settings(public_url=url).public_url_warning() is None


@pytest.mark.parametrize(
    ("settings", "base"),
    [
        (Settings(public_url="http://ulak.dukkan.example"), "http://ulak.dukkan.example"),
        (Settings(public_url="http://10.0.0.5:8000/"), "http://10.0.0.5:8000"),
        # No public URL, served on every interface: links would name 0.0.0.0.
        (Settings(public_url="", host="0.0.0.0"), "http://0.0.0.0:8000"),  # noqa: S104
    ],
)
def test_a_plain_http_address_customers_reach_is_warned_of(settings: Settings, base: str) -> None:
    assert settings.public_url_warning() == (
        f"ULAK_PUBLIC_URL is {base}, not https: the links in every email (unsubscribe, "
        "pages) travel in clear text and mailbox providers distrust them; set "
        "ULAK_PUBLIC_URL=https://... (the address customers reach ulak at)"
    )


def start_worker(tmp_path: Path, public_url: str) -> str:
    """What `ulak worker` logs in its first seconds (it is stopped then)."""
    env = {
        **os.environ,
        "ULAK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/ulak.db",
        "ULAK_PUBLIC_URL": public_url,
        "ULAK_SMTP_URL": "",
        "ULAK_HELPER_PROCESSES": "0",
        "ULAK_LOG_LEVEL": "info",
    }
    subprocess.run(
        [sys.executable, "-m", "ulak", "migrate"], env=env, check=True, capture_output=True
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "ulak", "worker"], env=env, stdout=out, stderr=out
        )
        try:
            deadline = time.monotonic() + 30
            # The warning is its first line, before its first look at the database.
            while time.monotonic() < deadline and b"alembic" not in log.read_bytes():
                time.sleep(0.1)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    return log.read_text()


def test_the_worker_warns_at_start_of_a_plain_http_public_url(tmp_path: Path) -> None:
    logged = start_worker(tmp_path, "http://ulak.dukkan.example")
    warnings = [line for line in logged.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, logged
    assert warnings[0].endswith(
        " WARNING ulak: ULAK_PUBLIC_URL is http://ulak.dukkan.example, not https: the links "
        "in every email (unsubscribe, pages) travel in clear text and mailbox providers "
        "distrust them; set ULAK_PUBLIC_URL=https://... (the address customers reach ulak at)"
    )


def test_the_worker_starts_quietly_on_https(tmp_path: Path) -> None:
    logged = start_worker(tmp_path, "https://ulak.dukkan.example")
    assert "alembic" in logged  # it did start, and looked at the database
    assert " WARNING " not in logged
