"""One `ContainerSpec` per rank, built once and rendered once to `docker run`.

The launch script on the host receives the rendered argv as a value and assembles nothing; `run --dry-run` prints
exactly the same rendering. This renderer is the seam where other executors (Kubernetes, Slurm) would plug in: they
take the same `ContainerSpec`.

Secrets never appear in the argv: their names are listed in the spec, and their values reach `docker run` through
`--env-file /dev/stdin` (the launch script's stdin), so they are in no command line, plan output or job record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkrun.secrets import is_secret

HF_CACHE_IN_CONTAINER = "/cache/huggingface"
ENV_FILE_FROM_STDIN = "/dev/stdin"


@dataclass(frozen=True)
class Mount:
    """A host path mounted into the container. A source starting with `~/` is the SSH user's home on that host
    (filled in from the probe; shown as `~/...` in a dry-run)."""

    source: str
    target: str
    read_only: bool = False

    def arg(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    entrypoint: str  # the main process's program (`--entrypoint`, so an image ENTRYPOINT is never prepended)
    command: tuple[str, ...]  # its arguments
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[str, ...] = ()  # names only; values travel on the launch script's stdin
    labels: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()
    gpus: str | None = "all"
    ipc: str | None = "host"
    shm_size: str | None = None
    ulimits: tuple[tuple[str, str], ...] = ()
    network: str = "host"
    init: bool = True
    extra_args: tuple[str, ...] = ()  # the cluster's own `docker run` arguments, as given

    @property
    def argv(self) -> tuple[str, ...]:
        """The container's main process, as `docker inspect` reports it (Entrypoint + Cmd)."""
        return (self.entrypoint, *self.command)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "argv": list(self.argv),
            "env": dict(self.env),
            "secret_env": list(self.secret_env),
            "labels": dict(self.labels),
            "mounts": [m.arg() for m in self.mounts],
            "docker_argv": docker_run_argv(self),
        }


def docker_run_argv(spec: ContainerSpec) -> list[str]:
    """`docker run -d ...` for a spec: the only place a docker command line is assembled."""
    argv = ["docker", "run", "-d", "--name", spec.name]
    if spec.init:
        argv.append("--init")
    argv += ["--network", spec.network]
    for flag, value in (("--gpus", spec.gpus), ("--ipc", spec.ipc), ("--shm-size", spec.shm_size)):
        if value:
            argv += [flag, value]
    for name, limit in spec.ulimits:
        argv += ["--ulimit", f"{name}={limit}"]
    for key, value in spec.labels:
        argv += ["--label", f"{key}={value}"]
    for key, value in spec.env:
        argv += ["-e", f"{key}={value}"]
    argv += list(spec.extra_args)
    for mount in spec.mounts:
        argv += ["-v", mount.arg()]
    if spec.secret_env:
        argv += ["--env-file", ENV_FILE_FROM_STDIN]
    return [*argv, "--entrypoint", spec.entrypoint, spec.image, *spec.command]


def split_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret): names that look like credentials never reach a command line."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for key, value in env.items():
        (secret if is_secret(key) else plain)[key] = value
    return plain, secret


def env_file(secrets: Mapping[str, str]) -> bytes:
    """The private env file (`KEY=VALUE` lines) that `docker run --env-file /dev/stdin` reads."""
    return "".join(f"{k}={v}\n" for k, v in sorted(secrets.items())).encode("utf-8")


def home_path(path: str, home: str | None) -> str:
    """`~/x` on a host whose home is known (from the probe) -> `/home/u/x`; unknown home: unchanged."""
    if home and (path == "~" or path.startswith("~/")):
        return home.rstrip("/") + path[1:]
    return path
