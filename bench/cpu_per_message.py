"""The CPU the capacity target leaves ulak: what the plain sender of `bench/pipeline.py`
and the SMTP sink spend per message, on this machine, in this run.

The plain sender builds each message (EmailMessage, text and HTML, ~8 KB) and sends it
over 10 aiosmtplib connections; the sink (aiosmtpd, as in the pipeline bench) runs in a
thread of this process. Compare with the server CPU per order that `bench/pipeline.py`
prints (its processes together): on 2 cores, a pipeline matching the plain sender's rate
R must spend at most 2 s / R per message, sink and client included.

    .venv/bin/python bench/cpu_per_message.py [--messages 3000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiosmtpd.controller import Controller

from pipeline import HOST, SMTP_POOL, Sink, baseline_message, free_port


async def measure(port: int, n: int) -> tuple[float, float, float, float]:
    """Messages per second, and CPU ms per message to build, to send, and in the sink."""
    import aiosmtplib

    thread, process = time.thread_time(), time.process_time()
    messages = [baseline_message(i) for i in range(n)]
    build = (time.thread_time() - thread) / n
    queue = iter(messages)

    async def connection() -> None:
        smtp = aiosmtplib.SMTP(
            hostname=HOST, port=port, local_hostname="bench.localhost", start_tls=False
        )
        async with smtp:
            for message in queue:
                await smtp.send_message(message)

    thread, process, wall = time.thread_time(), time.process_time(), time.monotonic()
    await asyncio.gather(*(connection() for _ in range(SMTP_POOL)))
    wall = time.monotonic() - wall
    send = (time.thread_time() - thread) / n
    sink = (time.process_time() - process) / n - send
    return n / wall, build * 1000, send * 1000, sink * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname=HOST, port=port, server_hostname="sink.localhost")
    controller.start()
    try:
        for _ in range(args.runs):
            rate, build, send, in_sink = asyncio.run(measure(port, args.messages))
            budget = 2000 / rate
            print(
                f"plain sender {rate:.0f} msgs/s: CPU per message build {build:.2f} ms, "
                f"send {send:.2f} ms, sink {in_sink:.2f} ms; at this rate 2 cores allow "
                f"{budget:.2f} ms per message in all, {budget - in_sink:.2f} ms besides the sink"
            )
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
