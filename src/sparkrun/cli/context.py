"""`AppContext`: the object Click passes to every command (`ctx.obj`). Built once per invocation; no globals.

It holds the console (the only printer) and a core `Session` whose events the console renders.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import click

from sparkrun.cli.console import Console

if TYPE_CHECKING:
    from sparkrun.api import Session, Target
    from sparkrun.config import UserConfig
    from sparkrun.plugins import RuntimeRegistry


class AppContext:
    def __init__(self, verbosity: int = 0, quiet: bool = False) -> None:
        self.verbosity = verbosity
        self.quiet = quiet
        self.console = Console(verbosity=verbosity, quiet=quiet)

    @cached_property
    def user_config(self) -> UserConfig:
        from sparkrun.config import load_user_config  # deferred: yaml is not needed for --help

        return load_user_config()

    @cached_property
    def session(self) -> Session:
        from sparkrun.api import Session  # deferred: the core loads only for commands that use it

        trace = self.console.detail if self.verbosity else None
        return Session(emit=self.console.render, trace=trace, config=self.user_config)

    @property
    def runtimes(self) -> RuntimeRegistry:
        registry: RuntimeRegistry = self.session.runtimes
        return registry


def target(hosts: str | None, hosts_file: str | None, cluster: str | None) -> Target:
    from sparkrun.api import Target  # deferred: see AppContext.session

    return Target(hosts=hosts, hosts_file=hosts_file, cluster=cluster)


pass_app = click.make_pass_decorator(AppContext, ensure=True)
