"""The shipped journeys reach existing stores: `ulak migrate` adds those shipped since a
store was made, as shipped, and never one the store removed or changed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, delete, select, text

from tests.support import make_store, ulak_cli
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.journeys.definition import load_journey
from ulak.journeys.models import Journey, JourneyVersion, ShippedJourney
from ulak.journeys.service import apply_journey, library, offer_library
from ulak.migrate import alembic_config, upgrade
from ulak.operations import offer_shipped_journeys

# Every shipped journey is on: commercial ones send only with consent.
SHIPPED = {
    "abandoned-cart": True,
    "back-in-stock": True,
    "birthday": True,
    "confirm-back-in-stock": True,
    "delivery-problems": True,
    "order-confirmation": True,
    "order-delivered": True,
    "order-preparing": True,
    "order-shipped": True,
    "replenishment": True,
    "return-updates": True,
    "returns": True,
    "satisfaction-make-good": True,
    "satisfaction-survey": True,
    "review-request": True,
    "special-days": True,
    "thank-you": True,
    "welcome": True,
    "win-back": True,
}


def test_the_library_is_the_shipped_journeys() -> None:
    assert {load_journey(source, name).key for name, source in library()} == set(SHIPPED)


async def journeys_of(db: Database, store_id: int) -> dict[str, tuple[bool, int]]:
    """key: (enabled, current version) of each journey of the store."""
    async with db.read() as session:
        rows = await session.execute(
            select(Journey.key, Journey.enabled, Journey.current_version).where(
                Journey.store_id == store_id
            )
        )
        return {key: (enabled, version) for key, enabled, version in rows.all()}


async def offered(db: Database, store_id: int) -> set[str]:
    async with db.read() as session:
        rows = await session.execute(
            select(ShippedJourney.key).where(ShippedJourney.store_id == store_id)
        )
        return set(rows.scalars())


async def test_a_new_store_is_offered_every_shipped_journey(
    db: Database, clock: FrozenClock
) -> None:
    store = await make_store(db, clock)
    assert await journeys_of(db, store.id) == {key: (on, 1) for key, on in SHIPPED.items()}
    assert await offered(db, store.id) == set(SHIPPED)
    async with db.transaction() as session:
        assert await offer_shipped_journeys(session, clock=clock) == {}


async def test_an_old_store_gets_the_journeys_shipped_since_as_shipped(
    db: Database, clock: FrozenClock
) -> None:
    # A store made before replenishment and win-back shipped: it has, and was offered, the
    # others (as migration 0012 records), and it switched welcome off.
    store = await make_store(db, clock, library=False)
    old = {key for key in SHIPPED if key not in ("replenishment", "win-back")}
    async with db.transaction() as session:
        for name, source in library():
            definition = load_journey(source, name)
            if definition.key in old:
                await apply_journey(
                    session, store_id=store.id, definition=definition, source=source, clock=clock
                )
                session.add(
                    ShippedJourney(store_id=store.id, key=definition.key, offered_at=clock.now())
                )
        welcome = await session.scalar(
            select(Journey).where(Journey.store_id == store.id, Journey.key == "welcome")
        )
        assert welcome is not None
        welcome.enabled = False
    async with db.transaction() as session:
        assert await offer_shipped_journeys(session, clock=clock) == {
            store.id: ["replenishment", "win-back"]
        }
    assert await journeys_of(db, store.id) == {
        **{key: (on, 1) for key, on in SHIPPED.items()},
        "welcome": (False, 1),
    }
    assert await offered(db, store.id) == set(SHIPPED)
    # Run again (every `ulak migrate`): nothing more.
    async with db.transaction() as session:
        assert await offer_shipped_journeys(session, clock=clock) == {}


async def test_a_journey_the_store_removed_is_never_added_again(
    db: Database, clock: FrozenClock
) -> None:
    store = await make_store(db, clock)
    async with db.transaction() as session:
        await session.execute(
            delete(Journey).where(Journey.store_id == store.id, Journey.key == "birthday")
        )
    async with db.transaction() as session:
        assert await offer_library(session, store_id=store.id, clock=clock) == []
    assert "birthday" not in await journeys_of(db, store.id)


async def test_a_journey_of_the_stores_own_under_a_shipped_key_is_kept_as_it_is(
    db: Database, clock: FrozenClock
) -> None:
    store = await make_store(db, clock, library=False)
    own = (
        "key: replenishment\nname: Bizim hatırlatma\nlegal_class: commercial\n"
        "trigger: {event: replenishment.due}\nreentry: always\n"
        "steps:\n  - wait: 2d\n  - send: email\n    template: replenishment\n"
    )
    async with db.transaction() as session:
        await apply_journey(
            session,
            store_id=store.id,
            definition=load_journey(own, "own.yaml"),
            source=own,
            clock=clock,
        )
    async with db.transaction() as session:
        added = await offer_library(session, store_id=store.id, clock=clock)
    assert added == sorted(key for key in SHIPPED if key != "replenishment")
    assert (await journeys_of(db, store.id))["replenishment"] == (True, 1)
    async with db.read() as session:
        sources = await session.execute(
            select(JourneyVersion.source)
            .join(Journey, Journey.id == JourneyVersion.journey_id)
            .where(Journey.store_id == store.id, Journey.key == "replenishment")
        )
        assert list(sources.scalars()) == [own]
    assert await offered(db, store.id) == set(SHIPPED)


def test_ulak_migrate_gives_a_store_from_before_0012_the_journeys_it_lacks(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0009")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO stores (name, locale, timezone, currency, phone_region,"
                " sender_name, sender_email, brand_color, link_secret, created_at)"
                " VALUES ('Dükkan', 'tr', 'Europe/Istanbul', 'TRY', 'TR', 'Dükkan',"
                " 'a@b.example', '#000000', 'x', '2026-11-01 00:00:00')"
            )
        )
        # Its one journey, changed by the store: kept as it is.
        connection.execute(
            text(
                "INSERT INTO journeys (store_id, key, name, enabled, current_version,"
                " trigger_event, created_at, updated_at) VALUES (1, 'welcome', 'Bizim',"
                " 1, 3, 'customer.created', '2026-11-01 00:00:00', '2026-11-02 00:00:00')"
            )
        )
    result = ulak_cli(
        "migrate", env={"ULAK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/old.db"}
    )
    assert result.returncode == 0, result.stderr
    added = sorted(key for key in SHIPPED if key != "welcome")
    assert f"store 1: added the shipped journeys {', '.join(added)}\n" in result.stdout
    with engine.connect() as connection:
        journeys = connection.execute(
            text("SELECT key, enabled, current_version FROM journeys ORDER BY key")
        ).all()
        offers = connection.execute(text("SELECT key FROM shipped_journeys ORDER BY key")).all()
        never_bought = connection.execute(text("SELECT never_bought_days FROM stores")).scalar()
    engine.dispose()
    assert [tuple(row) for row in journeys] == sorted(
        [(key, on, 1) for key, on in SHIPPED.items() if key != "welcome"] + [("welcome", True, 3)]
    )
    assert [key for (key,) in offers] == sorted(SHIPPED)
    assert never_bought == 14
    # Up to date: a second run adds nothing.
    again = ulak_cli("migrate", env={"ULAK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/old.db"})
    assert again.stdout == "database is up to date\n"
    upgrade(url)
