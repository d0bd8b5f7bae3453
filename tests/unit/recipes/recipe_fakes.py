"""Fake runtimes and small builders for the recipe tests (no dependency on the real runtime plugins)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from sparkrun.errors import PluginError, RecipeError
from sparkrun.recipes.load import load_text
from sparkrun.recipes.model import Recipe, RecipeSource
from sparkrun.runtimes.base import RankSpec, Runtime, ServeRequest, Topology


class FakeRuntime(Runtime):
    name: ClassVar[str] = "fake"
    family: ClassVar[str] = "fake"
    default_image: ClassVar[str] = "example/fake:1"
    mapped: ClassVar[frozenset[str]] = frozenset({"max_num_seqs"})

    def mapped_keys(self) -> frozenset[str]:
        return self.mapped

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        base = request.command or ("engine", request.model, "--port", str(request.setting("port")))
        specs = []
        for rank in range(topology.num_nodes):
            extra = () if topology.is_solo else ("--node-rank", str(rank))
            role = "solo" if topology.is_solo else ("head" if rank == 0 else "worker")
            specs.append(RankSpec(rank=rank, role=role, argv=(*base, *extra, *request.extra_args)))
        return tuple(specs)


def make_runtime(name: str, family: str = "", image: str = "example/fake:1") -> Runtime:
    cls = type(
        f"Fake_{name.replace('-', '_')}",
        (FakeRuntime,),
        {"name": name, "family": family or name, "default_image": image},
    )
    return cls()


class FakeRuntimes:
    """`RuntimeLookup` over fakes, with the real registry's error for unknown names."""

    def __init__(self, runtimes: Mapping[str, Runtime] | None = None) -> None:
        names = ("vllm-distributed", "vllm-ray", "sglang", "llama-cpp", "eugr-vllm")
        families = {"vllm-distributed": "vllm", "vllm-ray": "vllm", "eugr-vllm": "vllm"}
        self.runtimes = dict(runtimes or {n: make_runtime(n, families.get(n, n)) for n in names})

    def get(self, name: str) -> Runtime:
        if name not in self.runtimes:
            raise PluginError(
                f"unknown runtime {name!r}: no installed plugin provides it",
                hint=f"installed runtimes: {', '.join(sorted(self.runtimes))}",
            )
        return self.runtimes[name]


class BrokenRuntime(FakeRuntime):
    name: ClassVar[str] = "vllm-distributed"

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        raise ZeroDivisionError("plugin bug")


class RejectingRuntime(FakeRuntime):
    name: ClassVar[str] = "vllm-distributed"

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        raise RecipeError("the command sets --nnodes 4, but this launch needs 1")


def source(
    path: Path | None = None, *, name: str = "r", kind: Any = "file", trusted: bool = True, registry: str | None = None
) -> RecipeSource:
    return RecipeSource(name=path.stem if path else name, kind=kind, trusted=trusted, path=path, registry=registry)


def recipe_from(
    text: str,
    *,
    path: Path | None = None,
    strict: bool = False,
    trusted: bool = True,
    kind: Any = "file",
    registry: str | None = None,
) -> Recipe:
    src = source(path, name="recipe", kind=kind, trusted=trusted, registry=registry)
    directory = path.parent if path else None
    return load_text(text, src, directory=directory, strict=strict)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def make_repo(root: Path, files: Mapping[str, str]) -> tuple[Path, str]:
    """A local git repository with `files`; returns (path, file:// URL)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    for rel, text in files.items():
        write(root / rel, text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root, f"file://{root}"


def commit_file(repo: Path, rel: str, text: str) -> str:
    write(repo / rel, text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"change {rel}")
    return git(repo, "rev-parse", "HEAD")


SIMPLE = """\
recipe_version: "2"
model: org/model
runtime: vllm
defaults:
  port: 8000
  host: 0.0.0.0
  max_model_len: 4096
command: vllm serve {model} --port {port} --host {host} --max-model-len {max_model_len}
"""
