"""Render personal emails from sandboxed Jinja2 templates.

A template file `{name}.{locale}.html` holds the blocks `subject`, `preheader` (optional), `body`
(an HTML fragment) and `text` (the plain-text body). Each block is rendered on its own; statements
outside blocks (macros, `{% set %}`) run first so blocks can use them, and any text outside blocks
is ignored. The body is wrapped in `layout.html` and its CSS is inlined.

Store overrides are untrusted: every source renders in an immutable sandbox (no underscore
attributes, no mutating the context), and every failure becomes a TemplateError naming the
template and line. Rendering one email is bounded, so one store's template cannot stall the
worker that renders every store's mail: RENDER_CPU_SECONDS of CPU (a timer signal marks it
spent; the render stops at its next check, `_CpuBound`), MAX_RENDERED_CHARS of output
(counted as it is produced, and checked before `*` builds a string or list that large),
and, in the helper processes, memory
(`ulak.offload`). A store template that went over a limit fails at once afterwards in the
same process, without running again (`_over_limit`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import css_inline
from jinja2 import (
    ChainableUndefined,
    FunctionLoader,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    meta,
    nodes,
    pass_context,
    pass_eval_context,
)
from jinja2.exceptions import SecurityError
from jinja2.filters import do_format, do_replace
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from ulak.errors import Invalid
from ulak.messages.formatting import SHIPPED_LANGUAGES, Formatter, language_of

TEMPLATE_DIR = Path(__file__).parent / "templates" / "email"
# ulak's own emails to a shop (no store replaces them): one of its templates stops emails;
# a journey's `alert_shop` names a customer; a coupon pool ran dry.
SHOP_ALERT = "shop_alert"
SHOP_ALERT_CUSTOMER = "shop_alert_customer"
SHOP_ALERT_COUPONS = "shop_alert_coupons"
SHOP_ALERT_PRIVACY = "shop_alert_privacy"  # a customer's KVKK/GDPR request (`preferences/`)
SHOP_ALERT_SURVEY = "shop_alert_survey"  # surveys: an unhappy answer, with its comment
SHOP_ALERTS = frozenset(
    {SHOP_ALERT, SHOP_ALERT_CUSTOMER, SHOP_ALERT_COUPONS, SHOP_ALERT_PRIVACY, SHOP_ALERT_SURVEY}
)
REQUIRED_BLOCKS = ("subject", "body", "text")
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,100}$")
_FORMATTER_VAR = "_ulak_formatter"
_T = TypeVar("_T")
_DEFAULT_COLOR = "#1f2937"

# Bounds on rendering one email. A real order email renders in ~2.5 ms of CPU and ~30,000
# characters (bench/stages.py); the bounds are far above that and far below what would
# stall a worker or fill its memory.
RENDER_CPU_SECONDS = 2.0
MAX_RENDERED_CHARS = 1_000_000
_HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")

# Small localized strings of the shared layout and the plain-text footer.
LAYOUT_STRINGS: dict[str, dict[str, str]] = {
    "tr": {
        "questions": "Sorularınız için bize ulaşın:",
        "email": "E-posta",
        "phone": "Telefon",
        "unsubscribe_intro": "Bu tür e-postaları artık almak istemiyorsanız",
        "unsubscribe_link": "abonelikten çıkabilirsiniz",
        "unsubscribe_text": "Abonelikten çıkmak için:",
        "preferences_link": "E-posta tercihlerinizi yönetin",
        "preferences_text": "Tercihleriniz:",
    },
    "en": {
        "questions": "Questions? Get in touch:",
        "email": "Email",
        "phone": "Phone",
        "unsubscribe_intro": "Don't want these emails anymore? You can",
        "unsubscribe_link": "unsubscribe here",
        "unsubscribe_text": "Unsubscribe:",
        "preferences_link": "Manage your email preferences",
        "preferences_text": "Your preferences:",
    },
}


@dataclass(frozen=True)
class Brand:
    store_name: str
    locale: str
    timezone: str
    currency: str
    logo_url: str | None
    brand_color: str
    postal_address: str | None
    contact_email: str | None
    contact_phone: str | None
    website_url: str | None


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str
    text: str


class TemplateError(Invalid):
    code = "template_error"


class _Undefined(ChainableUndefined):
    """Missing optional data (no shipment, no address) renders as nothing, however deep the
    lookup; but a value the sandbox blocked fails loudly so a store sees why."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        return super().__getattr__(name)

    def __str__(self) -> str:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        return ""


class _Missing(StrictUndefined):
    """Data a journey may not have given its message (no coupon issued, a cart without
    items). `{% if coupon %}` is false; any other use fails the render with the reason, so
    the step fails visibly instead of mailing an empty code or an empty cart."""

    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]
        return False


def _missing(context: Mapping[str, Any]) -> dict[str, _Missing]:
    missing = {}
    if "coupon" not in context:
        hint = "no coupon was issued earlier in this journey (an issue_coupon action)"
        missing["coupon"] = _Missing(hint=f"coupon: {hint}", name="coupon")
    cart = context.get("cart")
    if not (isinstance(cart, Mapping) and cart.get("items")):
        hint = "this journey has no cart" if cart is None else "the cart has no items"
        missing["cart"] = _Missing(hint=f"cart: {hint}", name="cart")
    return missing


def _present(value: object) -> bool:
    """`{% if order.shipping is present %}`: known, even when zero (free shipping)."""
    return not isinstance(value, Undefined) and value is not None and value != ""


def _value(value: object) -> object:
    return None if isinstance(value, Undefined) else value


def _formatter(ctx: Context) -> Formatter:
    fmt = ctx.get(_FORMATTER_VAR)
    if not isinstance(fmt, Formatter):
        raise RuntimeError("formatting filters need a render started by render_email")
    return fmt


@pass_context
def _money(ctx: Context, value: object, currency: str | None = None) -> str:
    return _formatter(ctx).money(_value(value), currency)


@pass_context
def _date(ctx: Context, value: object, format: str = "long") -> str:
    return _formatter(ctx).date(_value(value), format)


@pass_context
def _datetime(ctx: Context, value: object, format: str = "medium") -> str:
    return _formatter(ctx).datetime(_value(value), format)


@pass_context
def _number(ctx: Context, value: object) -> str:
    return _formatter(ctx).number(_value(value))


@pass_context
def _country(ctx: Context, value: object) -> str:
    return _formatter(ctx).country(_value(value))


@pass_context
def _payment_method(ctx: Context, value: object) -> str:
    return _formatter(ctx).payment_method(_value(value))


def _finalize(value: object) -> object:
    # Store-written templates print optional fields directly; "None" would reach customers.
    return "" if value is None else value


class RenderLimit(Exception):
    """A render went over one of the bounds above."""


class CpuSpent(RenderLimit):
    """A render used up its CPU."""


class _Environment(ImmutableSandboxedEnvironment):
    # `'a' * 10**9` would build the whole string before any output is counted; so would
    # `'%0999999999d' % 1`.
    intercepted_binops = frozenset({"*", "**", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Every loop goes through `_each`, which checks the CPU bound at each step: a loop
        # over a long string or list otherwise runs no code of ours. A filter, because a
        # template cannot redefine one (it could a global).
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _EACH, [], [], None, None, lineno=loop.lineno)
        return tree

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _cpu.check()  # every call a template makes (macros too) passes here
        if isinstance(text := getattr(__obj, "__self__", None), str):
            # `'x'.ljust(10**10)`, `'x'.center(...)`, `'x'.zfill(...)`: one C call.
            _check_sizes(*args, *kwargs.values())
            if getattr(__obj, "__name__", "") == "replace" and len(args) >= 2:
                _check_replace(text, args[0], args[1])
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _cpu.check()
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(times, int)
                    and len(sequence) * times > MAX_RENDERED_CHARS
                ):
                    raise RenderLimit(f"builds a value over {MAX_RENDERED_CHARS:,} long")
        elif operator == "**" and isinstance(right, int) and right > 1_000:
            raise RenderLimit("raises to a power over 1,000")
        elif (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() * right > 100_000
        ):
            raise RenderLimit("raises to a power of over 100,000 bits")
        elif operator == "%" and isinstance(left, str):
            _check_widths(left)
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _cpu.check()
        # Context values are dicts: `order.items` must be the order's items, not dict.items.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _cpu.check()
        # `order["items"]` on an order without items is missing, not the dict.items method.
        if isinstance(obj, dict):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=argument)
        return super().getitem(obj, argument)


# ulak's shared blocks (`_blocks.html`): the one name a template, shipped or a store's, can
# import. Nothing else is reachable through the loader.
_PARTIAL = re.compile(r"^_[a-z0-9_]+\.html$")


def _partial(name: str) -> str | None:
    return _shipped_source(name) if _PARTIAL.match(name) else None


def _environment(*, autoescape: bool) -> _Environment:
    env = _Environment(
        loader=FunctionLoader(_partial),
        autoescape=autoescape,
        undefined=_Undefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        money=_money,
        date=_date,
        datetime=_datetime,
        number=_number,
        country=_country,
        payment_method=_payment_method,
    )
    env.tests["present"] = _present
    env.filters[_EACH] = _each
    env.filters["format"] = _format
    for name in ("center", "indent", "truncate", "wordwrap"):
        env.filters[name] = _sized(env.filters[name])
    env.filters["replace"] = _replace
    return env


_EACH = "ulak_each"


def _each(value: Any) -> Any:
    """A loop's items, checking the CPU bound at each (see `_Environment._parse`)."""
    if isinstance(value, Undefined):
        return value
    return _checked(value)


def _checked(value: Iterable[Any]) -> Iterator[Any]:
    for item in value:
        _cpu.check()
        yield item


# A printf-style width or precision: `%0999999999d` builds a billion characters in C.
_WIDTH = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_widths(template: str) -> None:
    for width, precision in _WIDTH.findall(template):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_RENDERED_CHARS):
                raise RenderLimit(f"formats a value wider than {MAX_RENDERED_CHARS:,}")


def _check_sizes(*values: Any) -> None:
    if any(isinstance(v, int) and v > MAX_RENDERED_CHARS for v in values):
        raise RenderLimit(f"asks for a size over {MAX_RENDERED_CHARS:,}")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    """`s|replace('x', 'y' * 999999)` multiplies in one C call."""
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str) and old):
        return
    if len(text) + text.count(old) * (len(new) - len(old)) > MAX_RENDERED_CHARS:
        raise RenderLimit(f"replaces into a value over {MAX_RENDERED_CHARS:,} long")


@pass_eval_context
def _replace(
    eval_ctx: EvalContext, value: Any, old: Any, new: Any, count: int | None = None
) -> Any:
    """Jinja's `replace` filter, refusing a result over the output bound."""
    _check_replace(str(value), old, new)
    return do_replace(eval_ctx, value, old, new, count)


def _sized(filter_: Callable[..., Any]) -> Callable[..., Any]:
    """A Jinja filter whose numbers are sizes (`center`, `indent`), refusing huge ones."""

    def sized(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_sizes(*args, *kwargs.values())
        return filter_(value, *args, **kwargs)

    return sized


def _format(value: object, *args: Any, **kwargs: Any) -> str:
    """Jinja's `format` filter, with the same bound on widths as `%`."""
    text = str(value)
    _check_widths(text)
    return str(do_format(text, *args, **kwargs))


# Subject, preheader and text are plain text: escaping them would show "&amp;" to customers.
# So each source is compiled twice, once per environment.
_ENVS = {"html": _environment(autoescape=True), "text": _environment(autoescape=False)}
Mode = Literal["html", "text"]

# Inlined styles survive clients that drop <style>; the @media rules stay in a <style> for
# the clients that honour them. Never fetch stylesheets a store override may link to.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


@lru_cache(maxsize=512)
def _compile(source: str, label: str, mode: Mode) -> Template:
    """Compile once per distinct source (~22 ms each); the label only names it in errors."""
    env = _ENVS[mode]
    try:
        code = env.compile(source, name=label, filename=label)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"{label}, line {exc.lineno}: {exc.message}",
            details={"template": label, "line": exc.lineno},
        ) from exc
    return env.template_class.from_code(env, code, env.make_globals(None))


def _template_line(tb: TracebackType | None, label: str) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == label:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _guard(label: str, render: Callable[[], _T]) -> _T:
    try:
        try:
            return render()
        except Exception:
            # Rewrites the traceback so its frames carry template line numbers.
            _ENVS["html"].handle_exception()
    except TemplateError:
        raise
    except Exception as exc:
        line = _template_line(exc.__traceback__, label)
        where = f"{label}, line {line}" if line else label
        raise TemplateError(f"{where}: {exc}", details={"template": label, "line": line}) from exc


def _bounded(chunks: Iterable[str]) -> str:
    """Join a render's output, stopping as soon as it passes MAX_RENDERED_CHARS."""
    out, size = [], 0
    for chunk in chunks:
        _cpu.check()
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise RenderLimit(f"renders more than {MAX_RENDERED_CHARS:,} characters")
        out.append(chunk)
    return "".join(out)


class _CpuBound:
    """The CPU a render may use, in this thread.

    A SIGPROF timer marks the bound as spent, and the render stops at the next place it
    passes a check (every call, attribute, item, operator, step of a loop and chunk of
    output). The handler raises nothing itself: an exception from a signal handler can land
    where Python swallows it (seen: in a weakref callback during garbage collection), and
    the render would then run on unbounded. Signals reach only the main thread, which is
    where renders run: the helper processes' and, without helpers, the worker's own. Costs
    two system calls per email and a flag test per check: an order confirmation rendered in
    0.53 ms before the bounds and 0.56-0.58 ms with them (process CPU, median of 7 x 300).
    """

    def __init__(self) -> None:
        self.spent: str | None = None

    def check(self) -> None:
        if self.spent is not None:
            raise CpuSpent(self.spent)

    @contextmanager
    def bound(self, seconds: float) -> Iterator[None]:
        self.spent = None
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        start = time.thread_time()
        active = True

        def expired(_signal: int, _frame: FrameType | None) -> None:
            if not active:  # a signal still pending as the render ended
                return
            # The timer counts the whole process; the bound is this thread's own CPU.
            used = time.thread_time() - start
            if used < seconds:
                signal.setitimer(signal.ITIMER_PROF, max(seconds - used, 0.001))
            else:
                self.spent = f"took more than {seconds:g} s of CPU"

        previous = signal.signal(signal.SIGPROF, expired)
        signal.setitimer(signal.ITIMER_PROF, seconds)
        try:
            yield
        finally:
            active = False
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)
            self.spent = None


_cpu = _CpuBound()


# Store templates that went over a limit in this process, and why: the next email from one
# fails at once instead of spending its bounds again (a batch may hold hundreds).
_over_limit: dict[str, str] = {}
NOT_AGAIN = " (not rendered again)"


def _no_output(_ctx: Context) -> Iterator[str]:
    return iter(())


def _context(template: Template, variables: Mapping[str, Any]) -> Context:
    ctx = template.new_context(dict(variables))
    blocks = ctx.blocks
    # Run the top level (macros, sets) with every block muted, so blocks can use them.
    ctx.blocks = {name: [_no_output] for name in blocks}
    for _ in template.root_render_func(ctx):
        pass
    ctx.blocks = blocks
    return ctx


def _render_blocks(
    template: Template, names: tuple[str, ...], variables: Mapping[str, Any], label: str
) -> dict[str, str]:
    def render() -> dict[str, str]:
        ctx = _context(template, variables)
        return {
            name: _bounded(template.blocks[name](ctx)) if name in template.blocks else ""
            for name in names
        }

    return _guard(label, render)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _safe_color(value: str) -> str:
    # The colour lands inside <style>; anything but a hex colour could inject CSS.
    return value if _HEX_COLOR.match(value or "") else _DEFAULT_COLOR


def _text_on(color: str) -> str:
    hex_digits = color[1:] if len(color) == 7 else "".join(c * 2 for c in color[1:])
    r, g, b = (int(hex_digits[i : i + 2], 16) for i in (0, 2, 4))
    # Perceived brightness (ITU-R BT.601); light headers get dark text.
    return "#111827" if (299 * r + 587 * g + 114 * b) / 1000 > 160 else "#ffffff"


def resolve_locale(requested: str | None, store_locale: str | None) -> str:
    """The language a message is rendered in: the customer's, else the store's, else English."""
    for candidate in (language_of(requested), language_of(store_locale)):
        if candidate in SHIPPED_LANGUAGES:
            return candidate
    return "en"


@lru_cache(maxsize=64)
def _shipped_source(filename: str) -> str | None:
    path = TEMPLATE_DIR / filename
    return path.read_text(encoding="utf-8") if path.is_file() else None


@functools.cache
def shipped_templates() -> tuple[str, ...]:
    """The templates of customers' emails, which a store may replace with its own."""
    names = {p.name.split(".")[0] for p in TEMPLATE_DIR.glob("*.*.html")}
    return tuple(sorted(names - SHOP_ALERTS))


_OVERRIDE_LABEL = re.compile(r"^([a-z0-9_]+) \([a-z]+, store override\)")


def store_template_of(error: TemplateError) -> str | None:
    """The template whose store version `error` came from, if it came from one."""
    found = _OVERRIDE_LABEL.match(error.message)
    return found.group(1) if found else None


def reason_of(error: TemplateError) -> str:
    """What went wrong, as the shop should read it (not how often it was tried)."""
    return error.message.removesuffix(NOT_AGAIN)


def _source(name: str, lang: str, overrides: Mapping[str, str]) -> tuple[str, str]:
    if not TEMPLATE_NAME.match(name):
        raise TemplateError(f"unknown template {name!r}", details={"template": name})
    if name in overrides:
        return overrides[name], f"{name} ({lang}, store override)"  # see _OVERRIDE_LABEL
    filename = "layout.html" if name == "layout" else f"{name}.{lang}.html"
    source = _shipped_source(filename)
    if source is None:
        raise TemplateError(f"unknown template {name!r}", details={"template": name})
    return source, filename


@lru_cache(maxsize=512)
def _variables(source: str) -> frozenset[str]:
    try:
        return frozenset(meta.find_undeclared_variables(_ENVS["text"].parse(source)))
    except TemplateSyntaxError:
        return frozenset()  # the render says what is wrong with it


def template_variables(name: str, locale: str, overrides: Mapping[str, str]) -> frozenset[str]:
    """The context values a template reads (the store's version when it has one): values
    that cost a query (`recommendations`) are computed only for templates that read them.
    Parsed once per distinct source. A template name that is unknown reads nothing: its
    render says so."""
    try:
        source, _ = _source(name, resolve_locale(locale, locale), overrides)
    except TemplateError:
        return frozenset()
    return _variables(source)


def source_reads(source: str, names: Collection[str]) -> frozenset[str]:
    """Which of `names` a template's source reads."""
    return _variables(source) & frozenset(names)


def shipped_reads(name: str, names: Collection[str]) -> frozenset[str]:
    """Which of `names` the shipped template reads, in any of its languages."""
    found: frozenset[str] = frozenset()
    for lang in SHIPPED_LANGUAGES:
        source = _shipped_source(f"{name}.{lang}.html")
        if source is not None:
            found |= source_reads(source, names)
    return found


def shipped_source(name: str, locale: str) -> str:
    """The shipped source a store starts from when it overrides a template."""
    return _source(name, language_of(locale), {})[0]


def _require_blocks(template: Template, label: str) -> None:
    missing = [block for block in REQUIRED_BLOCKS if block not in template.blocks]
    if missing:
        raise TemplateError(
            f"{label}: missing block(s) {', '.join(missing)}",
            details={"template": label, "missing": missing},
        )


def check_template_source(source: str, *, name: str) -> None:
    """Compile a store's source as render_email would, so the admin can reject it early."""
    html = _compile(source, name, "html")
    if name != "layout":
        _compile(source, name, "text")
        _require_blocks(html, name)


def _text_footer(
    brand: Brand,
    strings: Mapping[str, str],
    unsubscribe_url: str | None,
    preferences_url: str | None = None,
) -> str:
    contact = [
        f"{strings[key]}: {value}"
        for key, value in (("email", brand.contact_email), ("phone", brand.contact_phone))
        if value
    ]
    lines = [
        brand.store_name,
        _collapse(brand.postal_address.replace("\n", ", ")) if brand.postal_address else "",
        " · ".join(contact),
        brand.website_url or "",
        f"{strings['unsubscribe_text']} {unsubscribe_url}" if unsubscribe_url else "",
        f"{strings['preferences_text']} {preferences_url}" if preferences_url else "",
    ]
    return "\n".join(["--", *(line for line in lines if line)])


def render_email(
    template: str,
    *,
    locale: str,
    brand: Brand,
    context: Mapping[str, Any],
    overrides: Mapping[str, str] | None = None,
    unsubscribe_url: str | None = None,
    preferences_url: str | None = None,
) -> RenderedEmail:
    """One email, within the bounds above."""
    overrides = overrides or {}
    for source in overrides.values():
        if source in _over_limit:
            raise TemplateError(f"{_over_limit[source]}{NOT_AGAIN}", details={"limit": True})
    try:
        with _cpu.bound(RENDER_CPU_SECONDS):
            return _render_email(
                template, locale, brand, context, overrides, unsubscribe_url, preferences_url
            )
    except (TemplateError, RenderLimit, MemoryError) as error:
        cause = error.__cause__ if isinstance(error, TemplateError) else error
        if not isinstance(cause, RenderLimit | MemoryError | RecursionError):
            raise
        reason = error.message if isinstance(error, TemplateError) else f"{template}: {error!r}"
        # Remembered: only the store template that went over (not a healthy layout beside
        # it), and only for the bounds that cost to reach again. Output and operator bounds
        # fail within milliseconds and may hold for one large order only.
        name = store_template_of(error) if isinstance(error, TemplateError) else None
        if isinstance(cause, CpuSpent | MemoryError) and name is not None and name in overrides:
            if len(_over_limit) > 256:
                _over_limit.clear()
            _over_limit[overrides[name]] = reason
        if isinstance(error, TemplateError):
            raise
        raise TemplateError(reason, details={"template": template, "limit": True}) from error


# The event of journeys whose message is about what their trigger says (not the order's
# state): the samples a template of that name is rendered on.
# A return as `returns.service.return_view` gives it to the returns emails.
_SAMPLE_RETURN: dict[str, Any] = {
    "reference": "R-7KQ2-9XMD",
    "order_id": "ord_1",
    "status": "requested",
    "resolution": "store_credit",
    "reason": "wrong_size",
    "reason_text": "Beden / ölçü uymadı",
    "comment": "Bir beden büyük olmalıydı.",
    "items": [
        {
            "line": 0,
            "title": "Seramik Kupa",
            "quantity": 2,
            "price": "250.00",
            "exchange_title": None,
        }
    ],
    "amount": "500.00",
    "currency": "TRY",
    "credit_bonus_percent": 10,
    "credit_amount": "550.00",
    "instructions": None,
    "label": None,
    "label_url": None,
    "rejection_reason": None,
    "refunded_amount": None,
}

SAMPLE_EVENTS: dict[str, dict[str, Any]] = {
    "survey_request": {"type": "survey.due", "data": {"order_id": "ord_1", "kind": "nps"}},
    "back_in_stock": {
        "type": "product.back_in_stock",
        "data": {
            "product_id": "p-1",
            "title": "Seramik Kupa",
            "url": "https://aysenin.example/kupa",
            "image_url": "https://cdn.aysenin.example/kupa.jpg",
            "price": "250.00",
            "currency": "TRY",
            "inventory": 4,
        },
    },
    "back_in_stock_confirm": {
        "type": "back_in_stock.confirm_requested",
        "data": {
            "product_id": "p-1",
            "title": "Seramik Kupa",
            "url": "https://aysenin.example/kupa",
            "image_url": "https://cdn.aysenin.example/kupa.jpg",
            "confirm_url": "https://ulak.aysenin.example/p/1/back_in_stock/eyJlIjoiYXlzZUBleGFtcGxlLmNvbSJ9",
        },
    },
    "delivery_problem": {
        "type": "shipment.problem",
        "data": {
            "shipment_id": "YK123456",
            "order_id": "ord_1",
            "problem": "attempt_failed",
            "message": "Alıcı adreste bulunamadı",
            "location": "Kadıköy",
        },
    },
    "replenishment": {
        "type": "replenishment.due",
        "data": {
            "date": "2026-12-22",
            "items": [
                {
                    "product_id": "p-1",
                    "variant_id": "v-1",
                    "title": "Seramik Kupa",
                    "quantity": 2,
                    "url": "https://aysenin.example/kupa",
                    "image_url": "https://cdn.aysenin.example/kupa.jpg",
                    "price": "250.00",
                    "currency": "TRY",
                },
                {"product_id": "p-2", "title": "Filtre Kahve", "quantity": 1, "currency": "TRY"},
            ],
            "product_ids": ["p-1", "p-2"],
            "reorder_url": "https://aysenin.example/sepet/v-1:2,v-2:1",
        },
    },
    "return_requested": {"type": "return.requested", "data": {"return_request": _SAMPLE_RETURN}},
    "return_updated": {
        "type": "return.updated",
        "data": {
            "return_request": _SAMPLE_RETURN
            | {
                "status": "approved",
                "instructions": "Ürünleri orijinal kutusunda Yurtiçi Kargo şubesine bırakın.",
                "label": "https://aysenin.example/iade/R-7KQ2-9XMD.pdf",
                "label_url": "https://aysenin.example/iade/R-7KQ2-9XMD.pdf",
            }
        },
    },
}


def sample_context(template: str | None = None) -> dict[str, Any]:
    """An order and a cart with everything a template may show (and the trigger event of
    a template that needs one): a store's template is rendered on it before it is saved
    (`ulak templates set`), and the tests render the shipped ones on it."""
    from ulak.web.links import PageLinks  # the page links' own module: fastapi and all

    event = SAMPLE_EVENTS.get(template or "")
    return ({"event": event} if event else {}) | {
        # The customer's page links, as a sent message gets them (signed with a sample key).
        "links": PageLinks(
            _base_url="https://ulak.example",
            _store_id=1,
            _secret="sample",  # noqa: S106 (a sample's key, signing nothing real)
            _customer_id=1,
            _order_id="ord_1",
            _stamp=1795424400,
        ),
        "customer": {"first_name": "Ayşe", "last_name": "Yılmaz", "email": "ayse@example.com"},
        "order": {
            "order_id": "ord_1",
            "number": "1001",
            "status": "paid",
            "subtotal": Decimal("1250.00"),
            "discount": Decimal("50.00"),
            "shipping": Decimal("49.90"),
            "tax": Decimal("208.32"),
            "total": Decimal("1249.90"),
            "currency": "TRY",
            # 22:30 UTC is already the 23rd in Istanbul.
            "placed_at": dt.datetime(2026, 11, 22, 22, 30, tzinfo=dt.UTC),
            "shipping_address": {
                "name": "Ayşe Yılmaz",
                "line1": "Moda Cad. 12 D:3",
                "district": "Kadıköy",
                "city": "İstanbul",
                "postal_code": "34710",
                # An ISO code, as most shops send it: shown as "Türkiye" (`country`).
                "country": "TR",
            },
            "payment_method": "credit_card",
            "order_url": "https://aysenin.example/hesabim/siparis/1001",
            "items": [
                {
                    "product_id": "p-1",
                    "title": "Seramik Kupa",
                    "quantity": 2,
                    "price": Decimal("250.00"),
                    "url": "https://aysenin.example/kupa",
                    "image_url": "https://cdn.aysenin.example/kupa.jpg",
                },
                {
                    "product_id": "p-3",
                    "title": "Keten Önlük",
                    "quantity": 1,
                    "price": Decimal("750.00"),
                },
            ],
        },
        "shipment": {
            "carrier": "Yurtiçi Kargo",
            "tracking_number": "YK123456",
            "tracking_url": "https://kargo.example/YK123456",
            "estimated_delivery": "2026-11-25",
        },
        # What an abandoned cart's reminders show.
        "cart": {
            "cart_id": "cart_1",
            "status": "open",
            "items": [
                {
                    "title": "Seramik Kupa",
                    "quantity": 2,
                    "price": Decimal("250.00"),
                    "url": "https://aysenin.example/kupa",
                    "image_url": "https://cdn.aysenin.example/kupa.jpg",
                },
                {"title": "Keten Önlük", "quantity": 1, "price": Decimal("750.00")},
            ],
            "total": Decimal("1250.00"),
            "currency": "TRY",
            "recovery_url": "https://aysenin.example/sepet/cart_1",
        },
        # What the thank-you journey's messages show (`journeys.context.add_costly`).
        "tips": [
            {
                "product_id": "p-1",
                "title": "Seramik Kupa",
                "url": "https://aysenin.example/kupa",
                "tips": [
                    "İlk kullanımdan önce ılık suyla yıkayın.",
                    "Bulaşık makinesine uygundur.",
                ],
            }
        ],
        # Published 4-5 star reviews their writers let the shop quote (reviews/).
        "testimonials": [
            {
                "rating": 5,
                "title": "Çok şık",
                "body": "Kupalar fotoğraftakinden de güzel, paketleme özenliydi.",
                "name": "Zeynep K.",
                "product_title": "Seramik Kupa",
            }
        ],
        "recommendations": [
            {
                "product_id": "p-2",
                "title": "Keten Peçete",
                "url": "https://aysenin.example/pecete",
                "image_url": "https://cdn.aysenin.example/pecete.jpg",
                "price": Decimal("180.00"),
                "currency": "TRY",
                "price_text": "180,00 ₺",
            }
        ],
    }


def _render_email(
    template: str,
    locale: str,
    brand: Brand,
    context: Mapping[str, Any],
    overrides: Mapping[str, str],
    unsubscribe_url: str | None,
    preferences_url: str | None = None,
) -> RenderedEmail:
    lang = resolve_locale(locale, brand.locale)
    fmt = Formatter(locale=lang, timezone=brand.timezone, currency=brand.currency)
    store = dataclasses.asdict(brand)
    color = _safe_color(brand.brand_color)
    variables: dict[str, Any] = {
        "store": store,
        **context,
        **_missing(context),
        "locale": lang,
        # The checked brand colour, for `_blocks.button`'s bgcolor (store.brand_color is
        # the shop's raw value).
        "brand_color": color,
        _FORMATTER_VAR: fmt,
    }

    source, label = _source(template, lang, overrides)
    text_template = _compile(source, label, "text")
    _require_blocks(text_template, label)
    plain = _render_blocks(text_template, ("subject", "preheader", "text"), variables, label)
    body = _render_blocks(_compile(source, label, "html"), ("body",), variables, label)["body"]
    subject, preheader = _collapse(plain["subject"]), _collapse(plain["preheader"])

    layout_source, layout_label = _source("layout", lang, overrides)
    website = brand.website_url
    layout_vars = {
        "store": store,
        "locale": lang,
        "t": LAYOUT_STRINGS[lang],
        "subject": subject,
        "preheader": preheader,
        "body": Markup(body),  # noqa: S704 - rendered by the autoescaping environment above
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "brand_color": color,
        "header_text_color": _text_on(color),
        "website_host": (urlsplit(website).netloc or website) if website else None,
        _FORMATTER_VAR: fmt,
    }
    layout = _compile(layout_source, layout_label, "html")
    html = _guard(
        layout_label, lambda: _bounded(layout.root_render_func(layout.new_context(layout_vars)))
    )
    text = _tidy_text(plain["text"])
    footer = _text_footer(brand, LAYOUT_STRINGS[lang], unsubscribe_url, preferences_url)
    return RenderedEmail(
        subject=subject,
        preheader=preheader,
        html=_INLINER.inline(html),
        text=f"{text}\n\n{footer}\n",
    )
