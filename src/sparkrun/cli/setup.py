"""`sparkrun setup …`: host setup and checks. `setup plugins` is an alias of `plugins` (as in earlier sparkrun)."""

from __future__ import annotations

import click

from sparkrun.cli.plugins import plugins


@click.group()
def setup() -> None:
    """Host setup and checks."""


setup.add_command(plugins, "plugins")
