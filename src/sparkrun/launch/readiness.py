"""When a job counts as ready: its port opens, `GET /v1/models` answers, and one streamed chat completion succeeds.

Readiness asks the server: the completion uses a model id that `/v1/models` reports (the planned served name when
the engine serves it, else the engine's first id), and the endpoint line shows the names the engine really serves.
A 4xx answer (unknown model, missing API key) ends readiness at once with the engine's own message and a hint,
never after the full timeout. A recipe that sets an API key (`--api-key` in the serve command, or `VLLM_API_KEY` /
`OPENAI_API_KEY` in the env) gets it used: it reaches the script on stdin, never a command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparkrun.errors import RecipeError
from sparkrun.runtimes.flags import flag_value

DEFAULT_PROMPT = "Reply with exactly: sparkrun-ready"
API_KEY_ENV = ("VLLM_API_KEY", "OPENAI_API_KEY", "API_KEY", "SGLANG_API_KEY", "LLAMA_API_KEY")


@dataclass(frozen=True)
class Readiness:
    port_timeout: int = 1800
    health_timeout: int = 900
    inference: bool = True
    inference_timeout: int = 1200
    prompt: str = DEFAULT_PROMPT
    rendezvous_timeout: int = 600  # a rank's wait_port must open within this

    @classmethod
    def from_recipe(cls, data: Mapping[str, Any] | None) -> Readiness:
        d = dict(data or {})
        base = cls()
        try:
            return cls(
                port_timeout=int(d.get("port_timeout_s", base.port_timeout)),
                health_timeout=int(d.get("health_timeout_s", base.health_timeout)),
                inference=bool(d.get("inference", base.inference)),
                inference_timeout=int(d.get("inference_timeout_s", base.inference_timeout)),
                prompt=str(d.get("inference_prompt") or base.prompt),
                rendezvous_timeout=int(d.get("rendezvous_timeout_s", base.rendezvous_timeout)),
            )
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"readiness: timeouts must be whole seconds ({exc})") from exc

    @property
    def budget(self) -> float:
        """The longest a readiness step may run (all phases), plus slack."""
        return float(self.port_timeout + self.health_timeout + (self.inference_timeout if self.inference else 0) + 60)


def api_key(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The API key the engine will demand, if the recipe sets one we can read (never a `$VAR` we cannot expand)."""
    for source in (flag_value(argv, ("--api-key",)), *(env.get(name) for name in API_KEY_ENV)):
        if source and not source.startswith("$"):
            return source
    return None
