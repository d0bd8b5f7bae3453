"""`AppContext`: the object Click passes to every command (`ctx.obj`). Built once per invocation; no globals."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import click

from sparkrun.console import Console

if TYPE_CHECKING:
    from sparkrun.bootstrap import RuntimeRegistry
    from sparkrun.config import UserConfig
    from sparkrun.orchestration.hosts import HostSelection
    from sparkrun.orchestration.transport import Transport


class AppContext:
    def __init__(self, verbosity: int = 0, quiet: bool = False) -> None:
        self.verbosity = verbosity
        self.quiet = quiet
        self.console = Console(verbosity=verbosity, quiet=quiet)

    @cached_property
    def user_config(self) -> UserConfig:
        from sparkrun.config import load_user_config

        return load_user_config()

    @cached_property
    def runtimes(self) -> RuntimeRegistry:
        from sparkrun.bootstrap import load_runtimes

        return load_runtimes()

    @cached_property
    def transport(self) -> Transport:
        from sparkrun.orchestration.transport import Transport

        parallel = self.user_config.get("ssh.max_parallel", 16)
        trace = self.console.detail if self.verbosity else None
        return Transport(max_parallel=int(parallel), trace=trace)

    def select_hosts(self, hosts: str | None, hosts_file: str | None, cluster: str | None) -> HostSelection:
        from sparkrun.orchestration.hosts import resolve_hosts

        return resolve_hosts(self.user_config, hosts=hosts, hosts_file=hosts_file, cluster=cluster)


pass_app = click.make_pass_decorator(AppContext, ensure=True)
