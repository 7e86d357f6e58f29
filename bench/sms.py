"""SMS end to end: `order.placed` events in over HTTP, SMS out to a fake Netgsm over HTTP.

`ulak serve` runs as a user runs it (SQLite in a fresh temporary file, its worker process),
with one store whose provider is Netgsm (`ulak stores sms set`) and a journey that texts
each order at once (`send: sms`, informational); the shipped (email) journeys are switched
off unless --with-library, so the figure is the SMS path's. The fake Netgsm (REST v2
`send`, answering `{"code": "00", "jobid": ...}` as Netgsm's SDKs document it) runs in a
process of its own and counts what it takes. The figure is SMS/s from the first POST
until the fake took the last SMS, and its ratio to a baseline measured in the same run:

* baseline: a plain httpx loop posting the same Netgsm requests to the same fake, over as
  many connections as ulak's delivery slots (ULAK_SMTP_POOL_SIZE, 10).

    PYTHONPATH=<worktree>/src .venv/bin/python bench/sms.py [--sms N] [--slots 10] [--with-library]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
JOURNEY = """\
key: order-sms
name: Order SMS
legal_class: informational
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: sms
    template: order_sms
"""
TEMPLATE = "{{ store.store_name }}: siparişiniz alındı, teşekkürler {{ customer.first_name }}!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def fake_netgsm(port: int) -> None:
    """The fake's process: Netgsm's send, and /count for the bench."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    taken = {"n": 0, "last": 0.0}

    async def send(request: Request) -> JSONResponse:
        await request.body()
        taken["n"] += 1
        taken["last"] = time.time()
        return JSONResponse({"code": "00", "description": "queued", "jobid": str(taken["n"])})

    async def count(_: Request) -> JSONResponse:
        return JSONResponse(taken)

    async def reset(_: Request) -> JSONResponse:
        taken.update(n=0, last=0.0)
        return JSONResponse(taken)

    app = Starlette(
        routes=[
            Route("/sms/rest/v2/send", send, methods=["POST"]),
            Route("/count", count),
            Route("/reset", reset, methods=["POST"]),
        ]
    )
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


def ulak(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ulak", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ulak {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited")
        with suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def taken(fake: str, client: httpx.AsyncClient) -> dict[str, Any]:
    answer: dict[str, Any] = (await client.get(f"{fake}/count")).json()
    return answer


async def baseline(fake: str, n: int, connections: int) -> float:
    """Plain httpx: the same request ulak's Netgsm gateway makes, `connections` at a time."""
    body = {
        "msgheader": "AYSEDKKN",
        "messages": [
            {"msg": "Ayşe'nin Dükkanı: siparişiniz alındı, teşekkürler Ayşe!", "no": "5321234567"}
        ],
        "encoding": "TR",
        "iysfilter": "0",
    }
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await client.post(f"{fake}/reset")
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                response = await client.post(
                    f"{fake}/sms/rest/v2/send",
                    json=body,
                    headers={"Authorization": "Basic dTpw"},
                )
                response.raise_for_status()

        start = time.time()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return n / (time.time() - start)


def order(i: int) -> dict[str, Any]:
    return {
        "id": f"evt-{i}",
        "type": "order.placed",
        "customer": {"id": f"c-{i}", "phone": f"+90532{i:07d}", "first_name": "Ayşe"},
        "data": {
            "order_id": str(i),
            "items": [{"title": "Seramik kupa", "quantity": 1, "price": "249.95"}],
            "total": "249.95",
            "currency": "TRY",
        },
    }


async def through_ulak(url: str, key: str, fake: str, n: int) -> float:
    async with httpx.AsyncClient(timeout=60) as client:
        await client.post(f"{fake}/reset")
        start = time.time()
        for first in range(0, n, 100):
            events = [order(i) for i in range(first, min(first + 100, n))]
            response = await client.post(
                f"{url}/v1/events",
                json={"events": events},
                headers={"Authorization": f"Bearer {key}"},
            )
            response.raise_for_status()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            seen = await taken(fake, client)
            if seen["n"] >= n:
                return n / (float(seen["last"]) - start)
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the fake took {seen['n']} of {n} SMS within 10 minutes")


def stages(path: Path) -> str:
    """When the pipeline's stages began and ended for the run's orders (UTC, from the
    database): events applied, SMS made, SMS sent; where a slow run spent its time."""
    import sqlite3

    with sqlite3.connect(path) as db:
        spans = {
            "events applied": "SELECT min(applied_at), max(applied_at) FROM events",
            "SMS made": "SELECT min(created_at), max(created_at) FROM messages",
            "SMS sent": "SELECT min(sent_at), max(sent_at) FROM messages",
        }
        return "\n".join(
            f"{name}: {' .. '.join(str(v)[11:23] for v in db.execute(query).fetchone())}"
            for name, query in spans.items()
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms", type=int, default=5000)
    parser.add_argument("--slots", type=int, default=10, help="ULAK_SMTP_POOL_SIZE")
    parser.add_argument(
        "--with-library",
        action="store_true",
        help="keep the shipped journeys on (each order also runs the email journeys)",
    )
    parser.add_argument("--fake", type=int, help=argparse.SUPPRESS)  # the fake's process
    args = parser.parse_args()
    if args.fake:
        fake_netgsm(args.fake)
        return
    with tempfile.TemporaryDirectory(prefix="ulak-bench-sms-") as folder:
        work = Path(folder)
        fake_port, port = free_port(), free_port()
        fake = f"http://{HOST}:{fake_port}"
        env = {
            "ULAK_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'ulak.db'}",
            "ULAK_SMS_GATEWAY_URL": fake,
            "ULAK_SMTP_POOL_SIZE": str(args.slots),
            # As in production, where email leaves over SMTP: deliveries then run in the
            # sender process, not on the worker's busy loop. No email is sent here (the
            # shipped journeys are off, and the customers have no address).
            "ULAK_SMTP_URL": f"smtp://{HOST}:{free_port()}",
            "ULAK_HOST": HOST,
            "ULAK_PORT": str(port),
            "ULAK_LOG_LEVEL": "warning",
        }
        fake_process = subprocess.Popen([sys.executable, __file__, "--fake", str(fake_port)])
        server = None
        try:
            wait_healthy(f"{fake}/count", fake_process)
            ulak("migrate", env=env)
            created = json.loads(
                ulak("stores", "create", "--name", "Ayşe'nin Dükkanı", "--json", env=env)
            )
            store, key = str(created["id"]), str(created["api_key"])
            ulak(
                "stores", "sms", "set", "--store", store, "--provider", "netgsm",
                "--sender", "AYSEDKKN", "--credentials-stdin",
                env=env, stdin="usercode=8503001122\npassword=bench\n",
            )  # fmt: skip
            if not args.with_library:
                for journey in json.loads(
                    ulak("journeys", "list", "--store", store, "--json", env=env)
                ):
                    ulak("journeys", "disable", journey["key"], "--store", store, env=env)
            (work / "order_sms.txt").write_text(TEMPLATE, encoding="utf-8")
            ulak(
                "templates",
                "set",
                "order_sms",
                str(work / "order_sms.txt"),
                "--store",
                store,
                env=env,
            )
            (work / "journey.yaml").write_text(JOURNEY, encoding="utf-8")
            ulak("journeys", "apply", str(work / "journey.yaml"), "--store", store, env=env)
            log = (work / "serve.log").open("wb")
            server = subprocess.Popen(
                [sys.executable, "-m", "ulak", "serve"],
                env={**os.environ, **env},
                stdout=log,
                stderr=log,
            )
            wait_healthy(f"http://{HOST}:{port}/healthz", server)
            base = asyncio.run(baseline(fake, args.sms, args.slots))
            rate = asyncio.run(through_ulak(f"http://{HOST}:{port}", key, fake, args.sms))
            print(f"baseline (httpx, {args.slots} connections): {base:,.0f} requests/s")
            print(f"ulak, order.placed to SMS at the gateway: {rate:,.0f} SMS/s")
            print(f"ratio to the baseline: {rate / base:.2f}")
            print(stages(work / "ulak.db"))
            problems = [
                line
                for line in (work / "serve.log").read_text(errors="replace").splitlines()
                if "ERROR" in line or "WARNING" in line
            ]
            if problems:
                print(f"{len(problems)} warnings or errors in the server's log, the first:")
                print("\n".join(problems[:5]))
        finally:
            for process in (server, fake_process):
                if process is not None and process.poll() is None:
                    process.terminate()
                    with suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=15)


if __name__ == "__main__":
    main()
