"""Fenced blocks of the documentation by language (recipes in ```yaml blocks, JSON schemas), for tests/docs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from docs.doc_examples import ROOT, documentation_files

FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")


@dataclass(frozen=True)
class Block:
    source: str
    line: int  # the line of the opening fence
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}"


def fenced_blocks(path: Path, root: Path = ROOT) -> list[Block]:
    blocks: list[Block] = []
    opened: tuple[int, str, str] | None = None  # (line, lang, indent)
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if match and opened is None:
            opened, body = (number, match.group(2).lower(), line[: len(line) - len(line.lstrip())]), []
        elif match and opened is not None:
            text = "\n".join(b.removeprefix(opened[2]) for b in body) + "\n"
            blocks.append(Block(str(path.relative_to(root)), opened[0], opened[1], text))
            opened = None
        elif opened is not None:
            body.append(line)
    return blocks


def as_recipe(block: Block) -> dict[str, Any] | None:
    """The block's YAML when it is a whole recipe (a mapping with `model:` or `recipe_version:`), else None."""
    if block.lang not in ("yaml", "yml"):
        return None
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) and ("model" in data or "recipe_version" in data) else None


def recipe_blocks() -> list[Block]:
    return [b for path in documentation_files() for b in fenced_blocks(path) if as_recipe(b) is not None]
