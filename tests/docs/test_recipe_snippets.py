"""Every recipe shown in the documentation (a ```yaml block with `model:` or `recipe_version:`) is valid for the
real validator: `sparkrun recipe validate FILE --json` reports no error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from docs.doc_snippets import Block, as_recipe, fenced_blocks, recipe_blocks
from sparkrun.cli import cli


def validate(text: str, directory: Path) -> tuple[int, dict[str, object]]:
    path = directory / "snippet.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["recipe", "validate", str(path), "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("block", recipe_blocks(), ids=lambda b: b.id)
def test_documented_recipe_validates(block: Block, tmp_path: Path) -> None:
    code, report = validate(block.text, tmp_path)
    assert report["valid"] and code == 0, f"{block.id}: {json.dumps(report['issues'], indent=1)}"


def test_the_site_and_the_recipe_readme_show_recipes() -> None:
    sources = {b.source for b in recipe_blocks()}
    assert {"website/docs/recipes.md", "recipes/README.md"} <= sources


def test_a_broken_recipe_snippet_would_fail(tmp_path: Path) -> None:
    code, report = validate("model: Qwen/Qwen3-1.7B\ncommand: vllm serve {model} --port {nope}\n", tmp_path)
    assert code == 3 and not report["valid"]
    assert [i["code"] for i in report["issues"] if i["severity"] == "error"] == ["unresolved-placeholder"]


def test_only_whole_recipes_count_as_recipe_snippets(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '```yaml\nmodel: a/b\n```\n\n```yaml\noverrides:\n  - when: {tp: 2}\n```\n\n```json\n{"model": 1}\n```\n'
        '\n  ```yaml\n  recipe_version: "2"\n  model: x\n  ```\n',
        encoding="utf-8",
    )
    blocks = fenced_blocks(page, root=tmp_path)
    assert [(b.line, as_recipe(b) is not None) for b in blocks] == [(1, True), (5, False), (10, False), (14, True)]
