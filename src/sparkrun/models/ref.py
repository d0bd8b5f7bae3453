"""Model references as recipes write them: `org/name`, `org/name:QUANT` (a GGUF quant, llama.cpp's `-hf` syntax), or
a path on the hosts (`/models/x.gguf`, `~/gguf/x.gguf`: pre-placed weights, nothing to download)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sparkrun.models.errors import ModelError

# Runtimes that read GGUF files; every other runtime reads a Hugging Face checkpoint (safetensors).
GGUF_RUNTIMES: Final = frozenset({"llama-cpp"})

_REPO_ID: Final = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
_QUANT: Final = re.compile(r"^[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class ModelRef:
    """A Hugging Face model repo, with the GGUF quant tag when the recipe named one."""

    repo_id: str
    quant: str | None = None

    @property
    def folder(self) -> str:
        """The repo's directory name in a Hugging Face cache: `models--org--name`."""
        return repo_folder_name(self.repo_id)

    def __str__(self) -> str:
        return f"{self.repo_id}:{self.quant}" if self.quant else self.repo_id


def repo_folder_name(repo_id: str) -> str:
    return "--".join(["models", *repo_id.split("/")])


def is_host_path(model: str) -> bool:
    return model.startswith(("/", "~", "./", "../"))


def parse_model_ref(model: str) -> ModelRef | None:
    """`org/name[:QUANT]` -> ModelRef; a host path -> None; anything else is a ModelError."""
    text = model.strip()
    if is_host_path(text):
        return None
    repo_id, colon, quant = text.partition(":")
    bad_name = "--" in repo_id or ".." in repo_id or repo_id.endswith((".", "-"))
    if not _REPO_ID.match(repo_id) or bad_name or (colon and not _QUANT.match(quant)):
        raise ModelError(
            f"model {model!r} is not a Hugging Face repo id",
            hint="write `org/name` (optionally `org/name:QUANT` for a GGUF quant) or an absolute path on the hosts",
        )
    return ModelRef(repo_id, quant or None)
