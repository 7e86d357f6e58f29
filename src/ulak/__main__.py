"""`python -m ulak` is the `ulak` command (how `ulak serve` starts its worker processes)."""

from ulak.cli import app

app(prog_name="ulak")
