"""The corpus run's report: counts per registry (ready / each expected reason / unexpected) and in total, each
unexpected case with its error line, one row per recipe, and the same as JSON."""

from __future__ import annotations

from corpus_e2e.classify import REASONS, Verdict
from corpus_e2e.registries import CorpusRecipe
from corpus_e2e.report import Context, Row, as_json, markdown


def recipe(ref: str, registry: str) -> CorpusRecipe:
    return CorpusRecipe(ref, registry, f"{registry}+repo", f"recipes/{ref.rsplit('/', 1)[-1]}.yaml", "sglang", "1+")


ROWS = [
    Row(recipe("@a/one", "a"), Verdict("ready", None, "http://10.213.0.11:8000/v1"), 1.5, 1, ("--x (sglang 0.5.23)",)),
    Row(recipe("@a/two", "a"), Verdict("expected", "mods-not-added", "e: mods[0]: ...", what="mods/fix"), 0.3),
    Row(recipe("@b/three", "b"), Verdict("unexpected", None, "exit 5: h: start: boom", ("log line",)), 3.0),
]
CTX = Context(hosts=4, image="img", startup_seconds=0.2, timeout_s=90, total_s=30.0, unlisted=("b+repo/x.yaml",))


def _count_row(text: str, first_cell: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_counts_per_registry_and_in_total_have_one_column_per_reason() -> None:
    text = markdown(ROWS, CTX)
    header = _count_row(text, "registry")
    assert header == ["registry", "repository", "recipes", "ready", *(r.title for r in REASONS), "unexpected"]
    mods = header.index("mods not added")
    a, b, total = _count_row(text, "a"), _count_row(text, "b"), _count_row(text, "**total**")
    assert (a[2], a[3], a[mods], a[-1]) == ("2", "1", "1", "0")
    assert (b[2], b[3], b[-1]) == ("1", "0", "1")
    assert (total[2], total[3], total[mods], total[-1]) == ("3", "1", "1", "1")


def test_each_unexpected_case_and_each_unlisted_recipe_is_printed_with_its_error_line() -> None:
    text = markdown(ROWS, CTX)
    section = text.split("## Unexpected", 1)[1].split("## Recipes", 1)[0]
    assert "`@b/three` (b+repo/recipes/three.yaml): exit 5: h: start: boom" in section
    assert "    - log line" in section
    assert "`b+repo/x.yaml`: in the corpus, but `sparkrun list` does not list it" in section
    assert "@a/" not in section


def test_recipe_rows_show_what_matched_and_flags_the_stand_ins_did_not_know() -> None:
    text = markdown(ROWS, CTX)
    assert "| `@a/two` | sglang | 1+ | mods-not-added | 0.3 | mods/fix |" in text
    assert "| `@b/three` | sglang | 1+ | **UNEXPECTED** | 3.0 | exit 5: h: start: boom |" in text
    assert "- `@a/one`: `--x (sglang 0.5.23)`" in text


def test_json_has_the_counts_and_every_recipe() -> None:
    data = as_json(ROWS, CTX)
    assert data["counts"] == {"ready": 1, "mods-not-added": 1, "unexpected": 1}
    assert [r["ref"] for r in data["recipes"]] == ["@a/one", "@a/two", "@b/three"]
    assert data["recipes"][0]["unknown_flags"] == ["--x (sglang 0.5.23)"]
    assert data["unlisted"] == ["b+repo/x.yaml"]
