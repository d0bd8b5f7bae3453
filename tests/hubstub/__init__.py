"""A Hugging Face Hub stand-in for tests and benchmarks (see server.py), its test models (presets.py) and pytest
fixtures (fixtures.py). Run it on its own with `PYTHONPATH=tests python -m hubstub --help`."""

from hubstub.presets import LlamaShape, write_gguf_repo, write_llama_repo
from hubstub.server import HubStub, RequestRecord

__all__ = ["HubStub", "LlamaShape", "RequestRecord", "write_gguf_repo", "write_llama_repo"]
