"""Model knowledge: what to download for a recipe, downloading it once, the Hugging Face cache layout, checking a
cache, and whether a model fits in memory. Nothing here imports huggingface_hub at import time.

    manifest.py   ModelRequest -> ModelManifest (pinned commit, the runtime's files, sizes, sha256); cached metadata
    selection.py  which files a runtime reads (safetensors rules, llama.cpp's GGUF quant rules, recipe patterns)
    download.py   download_model(manifest, hub_dir, offline=...) with huggingface_hub; resume; partial cleanup
    check.py      check_cache(hub_dir, manifest) and the same check on hosts (shell/model_check.sh)
    layout.py     hub cache paths: blobs/, snapshots/<commit>/, refs/, relative links
    vram.py       estimate_vram(...) -> VramEstimate (per-host breakdown, verdict, .table())
    memory.py     the facts an estimate needs (config.json, safetensors headers, GGUF metadata), cached
    hub.py        the only place that talks to the Hub (endpoint, token from the environment, error translation)
"""
