"""What queueing `message.sent` for webhooks costs the sender: `bench/stages.py`'s "send
messages" stage (claim, deliver to a counting transport, fold the outcomes) for the code
before the feature, after it with no endpoint, and after it with one endpoint subscribed
to `message.sent`, run alternately, each in its own process.

    PYTHONPATH=<worktree>/src .venv/bin/python bench/webhooks.py --before /tmp/ulak-before \\
        [--orders 300] [--runs 3]

`--before` is a checkout of the code before the feature (`git archive <commit> | tar -x
-C /tmp/ulak-before`). Figures are CPU ms and SQL statements per order of the stage, as
ratios against "before" measured in the same run: median and the spread over the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def stage(tree: Path, orders: int, endpoints: int | None) -> tuple[float, float]:
    """(CPU ms/order, SQL/order) of the "send messages" stage."""
    command = [sys.executable, str(tree / "bench" / "stages.py"), "--orders", str(orders)]
    if endpoints is not None:
        command += ["--webhook-endpoints", str(endpoints)]
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}:{tree}"}
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("send messages"):
            parts = line.split()
            return float(parts[-3]), float(parts[-1])
    raise RuntimeError(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    variants = {
        "before": (args.before, None),
        "after, no endpoint": (HERE, 0),
        "after, 1 endpoint": (HERE, 1),
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    sql: dict[str, list[float]] = {name: [] for name in variants}
    for run in range(args.runs):
        for name, (tree, endpoints) in variants.items():
            c, s = stage(tree, args.orders, endpoints)
            cpu[name].append(c)
            sql[name].append(s)
            print(f"run {run + 1} {name:20} {c:.2f} CPU ms/order {s:.2f} SQL/order", flush=True)
    base = statistics.median(cpu["before"])
    print(f"\nsend messages, {args.orders} orders, {args.runs} runs (median, min-max)")
    for name in variants:
        ratios = [c / base for c in cpu[name]]
        print(
            f"{name:20} {statistics.median(cpu[name]):.2f} CPU ms/order"
            f" ({statistics.median(ratios):.2f}x, {min(ratios):.2f}-{max(ratios):.2f}x)"
            f"  {statistics.median(sql[name]):.2f} SQL/order"
        )


if __name__ == "__main__":
    main()
