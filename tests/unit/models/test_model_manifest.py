"""Manifests built from the Hub stand-in: pinned commit, the runtime's files with sizes and sha256, cached so a later
dry-run shows them offline, recipe patterns and revisions honoured."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hubstub.fixtures import GGUF, LLAMA, HubModels
from hubstub.server import HubStub
from sparkrun.models.errors import ModelError, ModelNotCachedError, ModelNotFoundError
from sparkrun.models.manifest import (
    ModelManifest,
    ModelRequest,
    cached_manifest,
    model_request,
    resolve_manifest,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vllm_manifest_pins_the_commit_and_lists_the_checkpoint_files(hub: HubStub, hub_models: HubModels) -> None:
    manifest = resolve_manifest(ModelRequest(LLAMA, "vllm-distributed"))
    assert manifest.commit == hub.repos.get(LLAMA).refs["main"]  # type: ignore[union-attr]
    assert manifest.revision == "main"
    paths = [f.path for f in manifest.files]
    assert paths == sorted(paths)
    assert {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "config.json",
        "tokenizer.json",
        "generation_config.json",
    } <= set(paths)
    assert not {
        "pytorch_model.bin",
        "consolidated.safetensors",
        "original/consolidated.00.pth",
        "onnx/model.onnx",
        "assets/banner.png",
    } & set(paths)
    for item in manifest.files:
        source = hub_models.llama[item.path]
        assert item.size == source.stat().st_size
        if item.path.endswith(".safetensors"):
            assert item.sha256 == sha256(source) == item.blob
    assert manifest.total_bytes == sum(f.size for f in manifest.files)


def test_a_cached_manifest_is_shown_without_any_request(hub: HubStub, hub_models: HubModels) -> None:
    request = ModelRequest(LLAMA, "sglang")
    online = resolve_manifest(request)
    before = len(hub.stats.requests)
    assert cached_manifest(request) == online
    assert resolve_manifest(request, offline=True) == online
    assert len(hub.stats.requests) == before


def test_an_unseen_model_has_no_cached_manifest_and_offline_says_why(hub: HubStub, hub_models: HubModels) -> None:
    request = ModelRequest(LLAMA, "vllm-distributed")
    assert cached_manifest(request) is None
    with pytest.raises(ModelNotCachedError, match="no cached metadata"):
        resolve_manifest(request, offline=True)
    assert hub.stats.requests == []


def test_a_commit_revision_is_served_from_the_cache_once_seen(hub: HubStub, hub_models: HubModels) -> None:
    commit = resolve_manifest(ModelRequest(LLAMA, "vllm-distributed")).commit
    before = len(hub.stats.requests)
    pinned = resolve_manifest(ModelRequest(LLAMA, "vllm-distributed", revision=commit))
    assert pinned.commit == commit and pinned.revision == commit
    assert len(hub.stats.requests) == before


def test_a_moved_branch_is_looked_up_again_online(hub: HubStub, hub_models: HubModels) -> None:
    first = resolve_manifest(ModelRequest(LLAMA, "vllm-distributed"))
    hub.add_repo(LLAMA, {k: v for k, v in hub_models.llama.items() if k != "generation_config.json"})
    second = resolve_manifest(ModelRequest(LLAMA, "vllm-distributed"))
    assert second.commit != first.commit
    assert "generation_config.json" not in [f.path for f in second.files]
    old = resolve_manifest(ModelRequest(LLAMA, "vllm-distributed", revision=first.commit))
    assert old == ModelManifest(**{**old.__dict__, "revision": first.commit})
    assert "generation_config.json" in [f.path for f in old.files]


def test_llama_cpp_manifest_holds_the_split_quant_and_its_projector(hub: HubStub, hub_models: HubModels) -> None:
    manifest = resolve_manifest(ModelRequest(f"{GGUF}:Q8_0", "llama-cpp"))
    assert [f.path for f in manifest.files] == [
        "Q8_0/tiny-llama-Q8_0-00001-of-00002.gguf",
        "Q8_0/tiny-llama-Q8_0-00002-of-00002.gguf",
        "mmproj-tiny-llama-Q8_0.gguf",
    ]
    assert manifest.primary == "Q8_0/tiny-llama-Q8_0-00001-of-00002.gguf"
    assert manifest.quant == "Q8_0"
    assert manifest.container_path() == (
        f"/cache/huggingface/hub/models--test-org--tiny-llama-GGUF/snapshots/{manifest.commit}/"
        "Q8_0/tiny-llama-Q8_0-00001-of-00002.gguf"
    )


def test_llama_cpp_without_a_tag_takes_q4_k_m(hub: HubStub, hub_models: HubModels) -> None:
    manifest = resolve_manifest(ModelRequest(GGUF, "llama-cpp", include_mmproj=False))
    assert [f.path for f in manifest.files] == ["tiny-llama-Q4_K_M.gguf"]


def test_recipe_distribution_patterns_shape_the_manifest(hub: HubStub, hub_models: HubModels) -> None:
    config = {"models": {"entries": [{"name": "{model}", "ignore_patterns": ["*.json"]}]}}
    request = model_request(LLAMA, "vllm-distributed", distribution_config=config)
    paths = [f.path for f in resolve_manifest(request).files]
    assert not [p for p in paths if p.endswith(".json")]
    assert {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} <= set(paths)
    allow = {"models": {"entries": [{"name": LLAMA, "allow_patterns": "original/"}]}}
    paths = [f.path for f in resolve_manifest(model_request(LLAMA, "vllm-ray", distribution_config=allow)).files]
    assert paths == ["original/consolidated.00.pth", "original/params.json"]


def test_a_distribution_entry_may_pin_the_revision(hub: HubStub, hub_models: HubModels) -> None:
    commit = hub.repos.get(LLAMA).refs["main"]  # type: ignore[union-attr]
    config = {"models": {"entries": [{"name": LLAMA, "revision": commit}]}}
    assert model_request(LLAMA, "sglang", distribution_config=config).revision == commit
    assert model_request(LLAMA, "sglang", revision="v2", distribution_config=config).revision == "v2"


def test_the_manifest_survives_a_json_round_trip(hub: HubStub, hub_models: HubModels) -> None:
    manifest = resolve_manifest(ModelRequest(f"{GGUF}:Q4_K_M", "llama-cpp"))
    assert ModelManifest.from_json(manifest.to_json()) == manifest


def test_an_unknown_repo_is_one_clear_error(hub: HubStub, hub_models: HubModels) -> None:
    with pytest.raises(ModelNotFoundError, match=r"test-org/nope: no such model on http://127\.0\.0\.1") as err:
        resolve_manifest(ModelRequest("test-org/nope", "vllm-distributed"))
    assert "HF_TOKEN" in (err.value.hint or "")


def test_an_unknown_revision_is_one_clear_error(hub: HubStub, hub_models: HubModels) -> None:
    with pytest.raises(ModelNotFoundError, match="revision 'v9' not found"):
        resolve_manifest(ModelRequest(LLAMA, "vllm-distributed", revision="v9"))


def test_a_host_path_model_has_nothing_to_download() -> None:
    with pytest.raises(ModelError, match="path on the hosts"):
        resolve_manifest(ModelRequest("/models/x.gguf", "llama-cpp"))


def test_the_request_goes_to_hf_endpoint(hub: HubStub, hub_models: HubModels) -> None:
    resolve_manifest(ModelRequest(LLAMA, "vllm-distributed"))
    assert hub.requests(path=f"/api/models/{LLAMA}/revision/main", status=200)
