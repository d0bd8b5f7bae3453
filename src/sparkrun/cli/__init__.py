"""The `sparkrun` command: a root Click group whose subcommands are imported only when they are invoked.

`sparkrun --help` lists commands from the `COMMANDS` table below (module path + one-line help) without importing any of
them, which keeps `--help` and `--version` fast. A command module parses options, calls the core and prints through
`sparkrun.cli.console`; it never starts processes itself.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, NoReturn

import click

from sparkrun import __version__
from sparkrun.cli.context import AppContext
from sparkrun.errors import ExitCode, SparkrunError

# name -> ("module:attribute", short help shown by `sparkrun --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("sparkrun.cli.run:run", "Launch a recipe on the cluster and wait until it serves."),
    "status": ("sparkrun.cli.jobs:status", "Show the sparkrun containers running on the hosts."),
    "logs": ("sparkrun.cli.jobs:logs", "Show or follow a job's engine logs."),
    "sync": ("sparkrun.cli.sync:sync", "Copy a recipe's model and image to the hosts (fetched once, host to host)."),
    "model-cache": ("sparkrun.cli.model_cache:model_cache", "The hosts' Hugging Face caches: list, inspect, prune."),
    "stop": ("sparkrun.cli.jobs:stop", "Stop a job (or --all) on every host."),
    "list": ("sparkrun.cli.recipe:list_cmd", "List recipes (alias of `recipe list`)."),
    "search": ("sparkrun.cli.recipe:search_cmd", "Search recipes (alias of `recipe search`)."),
    "show": ("sparkrun.cli.recipe:show_cmd", "Show a recipe's resolved values and serve command."),
    "recipe": ("sparkrun.cli.recipe:recipe", "Recipes: list, search, show, validate."),
    "registry": ("sparkrun.cli.registry:registry", "Recipe registries: add, remove, update, list, trust."),
    "cluster": ("sparkrun.cli.cluster:cluster", "Named host groups with their SSH and container settings."),
    "plugins": ("sparkrun.cli.plugins:plugins", "Runtime plugins: what is installed and what failed to load."),
    "setup": ("sparkrun.cli.setup:setup", "Host setup and checks."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_target, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option("-v", "--verbose", count=True, help="More detail (-vv: debug logging and tracebacks).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
@click.version_option(__version__, "--version", prog_name="sparkrun", message="%(prog)s, version %(version)s")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Launch, watch and stop LLM inference workloads on DGX Spark clusters over plain SSH.

    \b
    Quick start:
      sparkrun list                                  recipes you can run
      sparkrun run RECIPE -H host1,host2 --dry-run   what would run where (no connection)
      sparkrun run RECIPE -H host1,host2             launch, wait until ready, follow logs
      sparkrun status | logs JOB | stop JOB
    """
    ctx.obj = AppContext(verbosity=verbose, quiet=quiet)
    if verbose:
        import logging  # deferred: only -v/-vv need library logging (~10 ms to import)

        logging.basicConfig(
            level=logging.DEBUG if verbose >= 2 else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )


def _fail(app: AppContext | None, exc: SparkrunError) -> NoReturn:
    from sparkrun.cli.console import Console  # deferred: only errors print through it before a command runs

    console = app.console if app is not None else Console()
    console.error(exc)
    sys.exit(int(exc.exit_code))


def main(argv: list[str] | None = None) -> None:
    """Entry point: translate every failure into one clear line and a documented exit code."""
    if os.environ.get("_SPARKRUN_COMPLETE"):
        # Shell completion is Click's own protocol: let Click answer it (it exits).
        cli.main(args=argv, prog_name="sparkrun", complete_var="_SPARKRUN_COMPLETE")
    ctx_holder: dict[str, Any] = {}
    try:
        with cli.make_context("sparkrun", list(sys.argv[1:] if argv is None else argv)) as ctx:
            ctx_holder["app"] = ctx.obj
            cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    except SparkrunError as exc:
        app = ctx_holder.get("app")
        if app is not None and app.verbosity >= 2:
            import traceback  # deferred: only -vv shows tracebacks

            traceback.print_exc()
        _fail(app, exc)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        # `sparkrun status | head`: the reader went away; not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        app = ctx_holder.get("app")
        if app is not None and app.verbosity >= 2:
            raise
        _fail(
            app,
            SparkrunError(
                f"internal error: {type(exc).__name__}: {exc}",
                hint="this is a bug in sparkrun; rerun with -vv for the traceback and report it",
            ),
        )
