"""`eugr-vllm`: eugr's spark-vllm-docker (v1) recipes.

It launches exactly like `vllm-ray`: eugr's own launcher runs vLLM on a Ray cluster, and the older sparkrun ran these
recipes through the same Ray flow, adding `--distributed-executor-backend ray`, so recipes written and tuned for
eugr keep the executor they were tested with.

What differs is the image: v1 recipes name a local build tag (`vllm-node`, `vllm-node-tf5`, …) built by eugr's
`build-and-copy.sh` with the recipe's `build_args`. sparkrun does not build images: `validate` reports the
`build_args`, and `fallback_image` names the published nightly twin the core runs when the tag is absent on the
head. Mods and hooks are run by the core, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final

from sparkrun.runtimes.base import ServeRequest
from sparkrun.runtimes.vllm import EUGR_NIGHTLY, VllmRayRuntime

DEFAULT_IMAGE: Final = f"{EUGR_NIGHTLY}:latest"


def _build_args(request: ServeRequest) -> tuple[str, ...]:
    raw = request.runtime_config.get("build_args")
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, Sequence):
        return tuple(str(item) for item in raw)
    return (str(raw),)


class EugrVllmRuntime(VllmRayRuntime):
    name: ClassVar[str] = "eugr-vllm"
    description: ClassVar[str] = "eugr spark-vllm-docker (v1) recipes: vLLM on Ray, prebuilt nightly for vllm-node tags"
    default_image: ClassVar[str] = DEFAULT_IMAGE

    def validate(self, request: ServeRequest) -> list[str]:
        problems = super().validate(request)
        build_args = _build_args(request)
        if build_args:
            fallback = self.fallback_image(request.image)
            instead = f"; when it is absent on the head, {fallback} runs instead" if fallback else ""
            problems.append(
                f"eugr-vllm: build_args {' '.join(build_args)} are not used: sparkrun does not build images, it runs "
                f"{request.image!r} as found on the hosts{instead}"
            )
        return problems
