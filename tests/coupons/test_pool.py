"""Pools of codes the shop made, and `ulak coupons` as a shop developer uses it."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.support import StoreKey, make_store, ulak_cli
from ulak.clock import FrozenClock
from ulak.coupons.models import Coupon
from ulak.coupons.schemas import ImportReport, TemplateChange
from ulak.coupons.service import import_pool, parse_codes, set_template
from ulak.db import Database
from ulak.errors import Invalid


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"ULAK_DATABASE_URL": database_url}


async def pool_template(db: Database, store: StoreKey, clock: FrozenClock, key: str) -> None:
    async with db.transaction() as session:
        await set_template(
            session,
            store_id=store.id,
            key=key,
            change=TemplateChange(source="pool", kind="percent", amount=Decimal(10)),
            now=clock.now(),
        )


async def imported(
    db: Database, store: StoreKey, clock: FrozenClock, text: str, key: str = "welcome"
) -> ImportReport:
    async with db.transaction() as session:
        return await import_pool(
            session, store_id=store.id, template_key=key, text=text, now=clock.now()
        )


async def pool(db: Database) -> list[tuple[str, str, str]]:
    async with db.read() as session:
        rows = await session.execute(
            select(Coupon.code, Coupon.code_key, Coupon.status).order_by(Coupon.id)
        )
        return [(code, key, status) for code, key, status in rows.all()]


def test_one_code_a_line() -> None:
    assert parse_codes("YAZ-1\n\n  yaz-2  \r\nYAZ_3\n") == (
        [(1, "YAZ-1"), (3, "yaz-2"), (4, "YAZ_3")],
        [],
    )


def test_csv_with_a_code_column() -> None:
    text = '\ufeffid;Code;note\n1;"AB-1";first\n2;AB-2;"two\nlines"\n3;AB-3;\n'
    assert parse_codes(text) == ([(2, "AB-1"), (4, "AB-2"), (5, "AB-3")], [])
    assert parse_codes("code\nX-1\nX-2\n") == ([(2, "X-1"), (3, "X-2")], [])


def test_bad_and_repeated_lines_are_named_by_their_line() -> None:
    codes, problems = parse_codes("OK-1\nnot a code\nok-1\n\nÇOK-2\n")
    assert codes == [(1, "OK-1")]
    assert problems == [
        (2, "invalid code 'not a code': use up to 64 letters, digits, '-', '_' or '.'"),
        (3, "duplicate of line 1: ok-1"),
        (5, "invalid code 'ÇOK-2': use up to 64 letters, digits, '-', '_' or '.'"),
    ]
    assert parse_codes("id,name\n1,x\n") == ([], [(1, 'a CSV file needs a column named "code"')])


async def test_importing_the_same_file_twice_adds_nothing_more(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await pool_template(db, store, clock, "welcome")
    first = await imported(db, store, clock, "A-1\nb-2\n")
    again = await imported(db, store, clock, "a-1\nB-2\nC-3\n")
    assert (first.added, first.already, again.added, again.already) == (2, 0, 1, 2)
    assert await pool(db) == [
        ("A-1", "A-1", "available"),
        ("b-2", "B-2", "available"),
        ("C-3", "C-3", "available"),
    ]


async def test_a_file_with_a_bad_line_imports_nothing(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await pool_template(db, store, clock, "welcome")
    await pool_template(db, store, clock, "cart")
    await imported(db, store, clock, "SEPET-1\n", key="cart")
    report = await imported(db, store, clock, "YENI-1\nsepet-1\nYENI-1\n")
    assert report == ImportReport(
        added=0,
        already=0,
        problems=[
            (2, "sepet-1 is already a code of coupon template 'cart'"),
            (3, "duplicate of line 1: YENI-1"),
        ],
    )
    assert await pool(db) == [("SEPET-1", "SEPET-1", "available")]


async def test_a_template_that_makes_its_codes_takes_no_pool(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    with pytest.raises(Invalid, match="makes its own codes"):
        await imported(db, store, clock, "A-1\n")
    assert await pool(db) == []


def test_coupons_commands(env: dict[str, str], tmp_path: Path) -> None:
    created = json.loads(ulak_cli("stores", "create", "--name", "Dükkan", "--json", env=env).stdout)
    store = str(created["id"])
    changed = ulak_cli(
        "coupons", "set-template", "welcome", "--store", store, "--source", "pool",
        "--minimum-order", "250", "--json", env=env,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout) == {
        "key": "welcome",
        "kind": "percent",
        "amount": "10.00",
        "minimum_order": "250.00",
        "validity_days": 30,
        "prefix": "HOSGELDIN",
        "source": "pool",
        "available": 0,
    }
    codes = tmp_path / "codes.csv"
    codes.write_text("code,value\nHG-001,10\nHG-002,10\nHG 003,10\nHG-001,10\n", encoding="utf-8")
    refused = ulak_cli(
        "coupons", "import", str(codes), "--store", store, "--template", "welcome", env=env
    )
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"{codes}:4: invalid code 'HG 003': use up to 64 letters, digits, '-', '_' or '.'",
        f"{codes}:5: duplicate of line 2: HG-001",
        "nothing was imported: fix the 2 line(s) above",
    ]
    codes.write_text("code,value\nHG-001,10\nHG-002,10\n", encoding="utf-8")
    importing = ("coupons", "import", str(codes), "--store", store, "--template", "welcome")
    for expected in ("2 code(s) added", "0 code(s) added"):
        done = ulak_cli(*importing, env=env)
        assert (done.returncode, done.stdout.split(" to the pool")[0]) == (0, expected)
    assert done.stdout.strip().endswith("welcome, 2 already there")
    listed = ulak_cli("coupons", "templates", "--store", store, "--json", env=env)
    assert [(t["key"], t["source"], t["available"]) for t in json.loads(listed.stdout)] == [
        ("birthday", "generated", 0),
        ("cart", "generated", 0),
        ("make-good", "generated", 0),
        ("next-order", "generated", 0),
        ("special-day", "generated", 0),
        ("welcome", "pool", 2),
        ("win-back", "generated", 0),
    ]
    table = ulak_cli("coupons", "templates", "--store", store, env=env)
    assert re.search(
        r"welcome\s*│\s*percent\s*│\s*10 %\s*│\s*250.00\s*│.*│\s*pool\s*│\s*2\s*│", table.stdout
    )
    shown = ulak_cli("coupons", "show", "hg-002", "--store", store, "--json", env=env)
    assert (json.loads(shown.stdout)["code"], json.loads(shown.stdout)["status"]) == (
        "HG-002",
        "available",
    )
    missing = ulak_cli("coupons", "show", "HG-999", "--store", store, env=env)
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        "error: no coupon 'HG-999' in this store",
    )
    bad = ulak_cli("coupons", "set-template", "vip", "--store", store, "--prefix", "vip", env=env)
    assert bad.returncode == 2
    assert "--prefix" in bad.stderr


async def test_a_journey_naming_a_template_the_store_lacks_is_refused(
    db: Database, clock: FrozenClock, env: dict[str, str], tmp_path: Path
) -> None:
    store = await make_store(db, clock, library=False)
    journey = tmp_path / "vip.yaml"
    journey.write_text(
        "key: vip\nname: VIP\nlegal_class: commercial\ntrigger: {event: order.placed}\n"
        "steps:\n  - action: issue_coupon\n    coupon: vip\n",
        encoding="utf-8",
    )
    applied = await asyncio.to_thread(
        ulak_cli, "journeys", "apply", str(journey), "--store", str(store.id), env=env
    )
    assert applied.returncode == 2
    assert "journey 'vip' issues coupons of 'vip', which store" in applied.stderr
    listed = await asyncio.to_thread(
        ulak_cli, "journeys", "list", "--store", str(store.id), "--json", env=env
    )
    assert json.loads(listed.stdout) == []
