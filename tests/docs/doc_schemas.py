"""The JSON Schemas of the documented `--json` outputs (website/docs/reference/schemas/), ready to validate with."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from docs.doc_examples import ROOT

SCHEMA_DIR = ROOT / "website" / "docs" / "reference" / "schemas"
# Outputs that need hosts, checked against stand-in hosts (tests/docs/test_json_schemas_hosts.py).
FAKE_HOST_SCHEMAS = frozenset(
    {
        "sync",
        "events",
        "model-cache-list",
        "model-cache-inspect",
        "model-cache-change",
        "setup-check",
        "setup-check-fix",
        "setup-plan",
        "setup-result",
        "setup-wizard",
    }
)


def schema_files() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("*.schema.json"))


@cache
def _registry() -> Registry:
    resources = []
    for path in schema_files():
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def validator(name: str) -> Draft202012Validator:
    """The validator of `<name>.schema.json` (e.g. "status"), with the other schemas resolvable by $ref."""
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def problems(name: str, document: Any) -> list[str]:
    """Every way `document` breaks the schema, one line each (empty when it conforms)."""
    errors = sorted(validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]
