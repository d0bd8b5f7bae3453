"""When a job counts as ready: its port opens, `GET /v1/models` answers, and one streamed chat completion succeeds.

Readiness asks the server: the completion uses a model id that `/v1/models` reports (the planned served name when
the engine serves it, else the engine's first id), and the endpoint line shows the names the engine really serves.
A 4xx answer (unknown model, missing API key) ends readiness at once with the engine's own message and a hint,
never after the full timeout. A recipe that sets an API key (`--api-key` in the serve command, or `VLLM_API_KEY` /
`OPENAI_API_KEY` in the env) gets it used: it reaches the script on stdin, never a command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sparkrun.runtimes.flags import flag_value

DEFAULT_PROMPT = "Reply with exactly: sparkrun-ready"
API_KEY_ENV = ("VLLM_API_KEY", "OPENAI_API_KEY", "API_KEY", "SGLANG_API_KEY", "LLAMA_API_KEY")


def api_key(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The API key the engine will demand, if the recipe sets one we can read (never a `$VAR` we cannot expand)."""
    for source in (flag_value(argv, ("--api-key",)), *(env.get(name) for name in API_KEY_ENV)):
        if source and not source.startswith("$"):
            return source
    return None
