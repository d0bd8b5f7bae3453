"""`AppContext`: the object Click passes to every command (`ctx.obj`). Built once per invocation; no globals."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import click

from sparkrun.console import Console

if TYPE_CHECKING:
    from sparkrun.bootstrap import RuntimeRegistry
    from sparkrun.config import UserConfig


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


pass_app = click.make_pass_decorator(AppContext, ensure=True)
