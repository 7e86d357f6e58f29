"""`ulak templates`: the shipped email templates and a store's own versions of them."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.errors import Invalid, UlakError
from ulak.operations import retry_messages
from ulak.stores.service import get_store
from ulak.terminal import console, err, in_transaction, reading, run_retry

templates_app = typer.Typer(
    help="Email and SMS (NAME_sms) templates and a store's own versions of them.",
    no_args_is_help=True,
)


@templates_app.command("list")
def templates_list(
    store: Annotated[int | None, typer.Option(help="Also the store's own templates.")] = None,
) -> None:
    """The shipped templates (and `layout`, the frame around every email); with --store,
    the store's own templates and versions beside them."""
    from ulak.messages.rendering import shipped_templates as shipped_emails
    from ulak.messages.service import store_templates
    from ulak.messages.sms import shipped_sms_templates

    def shipped_templates() -> tuple[str, ...]:
        return (*shipped_emails(), *shipped_sms_templates())

    own: list[tuple[str, str]] = []
    if store is not None:

        async def main(session: AsyncSession) -> list[tuple[str, str]]:
            await get_store(session, store)
            return await store_templates(session, store_id=store)

        own = reading(main)
    languages: dict[str, list[str]] = {}
    for name, locale in own:
        languages.setdefault(name, []).append(locale)
    for name in [
        *shipped_templates(),
        "layout",
        *sorted(set(languages) - set(shipped_templates())),
    ]:
        mine = languages.get(name)
        shipped = name in shipped_templates() or name == "layout"
        where = "shipped" if shipped else "the store's own"
        if mine:
            where += f"; store version: {', '.join(mine)}" if shipped else f": {', '.join(mine)}"
        console.print(f"{name}  ({where})" if store is not None else name, markup=False)


@templates_app.command("show")
def templates_show(name: str, locale: Annotated[str, typer.Option(help="tr or en")] = "tr") -> None:
    """Print a shipped template: the starting point for a store's own version."""
    from ulak.messages.rendering import shipped_source
    from ulak.messages.sms import is_sms_template, shipped_sms_source

    try:
        sms = shipped_sms_source(name, locale) if is_sms_template(name) else None
        sys.stdout.write(sms if sms is not None else shipped_source(name, locale))
    except UlakError as error:
        err.print(f"error: {error.message}", markup=False)
        raise typer.Exit(2) from error


@templates_app.command("set")
def templates_set(
    name: str,
    path: Path,
    store: Annotated[int, typer.Option(help="Store id.")],
    locale: Annotated[str, typer.Option(help="tr or en")] = "tr",
) -> None:
    """Use the store's own version of a template, or add a template of its own under a new
    name (checked on a sample order before it is saved)."""
    from ulak.journeys.definition import PROMOTIONS
    from ulak.journeys.service import informational_senders
    from ulak.messages.rendering import resolve_locale, source_reads
    from ulak.messages.service import set_template_override

    source = path.read_text(encoding="utf-8")

    async def main(session: AsyncSession) -> None:
        await get_store(session, store)
        # An informational journey (sent without consent) may carry no promotion: the
        # check `journeys apply` makes of its templates holds for a later version of one.
        shows = source_reads(source, PROMOTIONS)
        if shows and (
            senders := await informational_senders(session, store_id=store, template=name)
        ):
            raise Invalid(
                f"{name} shows {', '.join(sorted(shows))}, but the informational journeys "
                f"{', '.join(senders)} send it, and they carry no promotions: make them "
                "legal_class: commercial, or leave the promotion out"
            )
        await set_template_override(
            session,
            store_id=store,
            name=name,
            locale=resolve_locale(locale, locale),
            source=source,
            clock=SystemClock(),
        )

    in_transaction(main)
    console.print(f"store {store} now uses its own {name} ({locale})", markup=False)


@templates_app.command("reset")
def templates_reset(
    name: str,
    store: Annotated[int, typer.Option(help="Store id.")],
    locale: Annotated[str | None, typer.Option(help="tr or en; all when not given")] = None,
) -> None:
    """Remove a store's own version of a template: the shipped one is used again."""
    from ulak.messages.rendering import resolve_locale
    from ulak.messages.service import reset_template_override

    async def main(session: AsyncSession) -> int:
        await get_store(session, store)
        return await reset_template_override(
            session,
            store_id=store,
            name=name,
            locale=resolve_locale(locale, locale) if locale else None,
        )

    if in_transaction(main) == 0:
        err.print(f"store {store} has no version of its own of {name}", markup=False)
        raise typer.Exit(1)
    console.print(f"store {store} uses the shipped {name} again", markup=False)


messages_app = typer.Typer(help="Messages that failed.", no_args_is_help=True)


@messages_app.command("retry")
def messages_retry(
    store: Annotated[int, typer.Option(help="Store id.")],
    messages: Annotated[
        list[int] | None, typer.Argument(help="Message ids (see `ulak status`).")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Every failed message of the store since then (UTC).")
    ] = None,
) -> None:
    """Send failed messages again, each with a fresh set of attempts."""
    retried = run_retry(retry_messages, store, messages, since)
    shown = ", ".join(map(str, retried)) if retried else "none was failed"
    console.print(f"{len(retried)} message(s) queued again: {shown}", markup=False)
