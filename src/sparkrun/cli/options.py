"""Option decorators shared by several commands (same names and meaning as earlier sparkrun)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def hosts_options(func: F) -> F:
    """-H/--hosts, --hosts-file, --cluster: which hosts to act on (first given wins, then the default cluster)."""
    func = click.option("--cluster", "cluster", metavar="NAME", help="Use the hosts of a saved cluster.")(func)
    func = click.option("--hosts-file", metavar="FILE", help="File with one host per line (# comments).")(func)
    func = click.option("-H", "--hosts", metavar="HOSTS", help="Comma-separated hosts; the first is the head.")(func)
    return func


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(func)
