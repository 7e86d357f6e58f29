"""Jobs are declared by their feature; a periodic job runs once per tick across workers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.jobs import Job, JobContext, JobTick, registered
from ulak.worker import Workers, pipeline_stages


def test_each_feature_declares_its_jobs_in_pipeline_order() -> None:
    jobs = registered()
    assert set(jobs) == {
        "timers.fire_due",
        "events.apply",
        "journeys.run_due",
        "messages.send_due",
        "sms.poll_reports",
        "consent.iys_push",
        "consent.iys_pull",
        "events.forget_old",
        "webhooks.deliver",
    }
    # Periodic: deletes applied events past each store's retention (KVKK), hourly.
    assert jobs["events.forget_old"].every == timedelta(hours=1)
    assert jobs["timers.fire_due"].wakes == ("events.apply",)
    assert jobs["events.apply"].wakes == ("journeys.run_due",)
    assert jobs["journeys.run_due"].wakes == ("messages.send_due",)
    assert pipeline_stages(jobs) == {
        "timers.fire_due": 0,
        "events.apply": 1,
        "journeys.run_due": 2,
        "messages.send_due": 3,
        "sms.poll_reports": 0,
        "consent.iys_push": 0,
        "consent.iys_pull": 0,
        "events.forget_old": 0,
        "webhooks.deliver": 0,
    }
    # İYS's changes, pulled once a minute across workers, become events to apply.
    assert (jobs["consent.iys_pull"].every, jobs["consent.iys_pull"].wakes) == (
        timedelta(minutes=1),
        ("events.apply",),
    )
    # New events wake the job that applies them, not the first stage.
    assert [name for name, j in jobs.items() if j.on_events] == ["events.apply"]
    # Each pipeline job says when it next has work, for the worker's sleep and `simulate`.
    assert all(
        j.due is not None for name, j in jobs.items() if name != "events.apply" and not j.every
    )


def test_new_events_wake_the_job_that_applies_them(workers: Workers) -> None:
    workers.wake()
    woken = [name for name, event in workers._wake.items() if event.is_set()]
    assert woken == ["events.apply"]


async def test_a_periodic_job_runs_once_per_tick_across_workers(
    workers: Workers, db: Database, clock: FrozenClock
) -> None:
    runs: list[str] = []

    async def count(ctx: JobContext) -> int:
        runs.append(ctx.clock.now().isoformat())
        return 1

    job = Job("carts.detect_abandoned", count, every=timedelta(hours=1))
    # Two workers on the same database, as two `ulak worker` processes on PostgreSQL.
    first = Workers(workers.ctx, {job.name: job})
    second = Workers(replace(workers.ctx), {job.name: job})
    assert await first.run_job(job) == 1
    assert await second.run_job(job) == 0
    assert await first.run_job(job) == 0
    assert len(runs) == 1

    clock.travel(timedelta(minutes=59))
    assert await second.run_job(job) == 0
    clock.travel(timedelta(minutes=1))
    assert await second.run_job(job) == 1
    assert await first.run_job(job) == 0
    assert len(runs) == 2

    for _ in range(3):
        clock.travel(timedelta(hours=1))
        assert await first.run_job(job) == 1
    assert len(runs) == 5
    # Only the last two ticks are kept.
    async with db.read() as session:
        kept = (await session.execute(select(JobTick.tick).order_by(JobTick.tick))).scalars()
        assert len(list(kept)) == 2
