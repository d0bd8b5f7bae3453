"""Option decorators shared by several commands (same names and meaning as earlier sparkrun)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from sparkrun.cli.completion import complete_cluster
from sparkrun.recipes.settings_keys import CLI_SETTING_KEYS

F = TypeVar("F", bound=Callable[..., Any])


def hosts_options(func: F) -> F:
    """-H/--hosts, --hosts-file, --cluster: which hosts to act on (first given wins, then the default cluster)."""
    func = click.option(
        "--cluster",
        "cluster",
        metavar="NAME",
        help="Use the hosts of a saved cluster.",
        shell_complete=complete_cluster,
    )(func)
    func = click.option("--hosts-file", metavar="FILE", help="File with one host per line (# comments).")(func)
    func = click.option("-H", "--hosts", metavar="HOSTS", help="Comma-separated hosts; the first is the head.")(func)
    return func


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(func)


# The serve values a command line may set (same names and spellings as earlier sparkrun); each lands in the value
# chain under the key of the same name, above the recipe's defaults. The list lives with the recipe layer.
SERVE_VALUE_KEYS = CLI_SETTING_KEYS


def serve_value_options(func: F) -> F:
    """--tp, --pp, --gpu-mem, --max-model-len, --port, --served-model-name, --image, -o KEY=VALUE."""
    opts = [
        click.option("--tp", "--tensor-parallel", "tensor_parallel", type=int, help="Tensor parallel size (= hosts)."),
        click.option("--pp", "--pipeline-parallel", "pipeline_parallel", type=int, help="Pipeline parallel size."),
        click.option(
            "--gpu-mem",
            "--gpu-memory-utilization",
            "--mem-fraction-static",
            "gpu_memory_utilization",
            type=float,
            help="GPU memory fraction (0-1).",
        ),
        click.option("--max-model-len", type=int, help="Context length."),
        click.option("--port", type=int, help="API port on the head."),
        click.option("--served-model-name", help="Model name the API answers to."),
        click.option("--image", help="Container image (overrides the recipe)."),
        click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="Set any recipe value."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func
