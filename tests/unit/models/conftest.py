"""Model-layer tests run against the Hub stand-in (tests/hubstub); nothing may reach any other host."""

from __future__ import annotations

from hubstub.fixtures import hf_token, hub, hub_model_files, hub_models, no_foreign_hosts  # noqa: F401
