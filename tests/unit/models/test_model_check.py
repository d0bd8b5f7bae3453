"""The cache check, in Python and as model_check.sh run by real bash against a real directory: both report every
state (present, unlinked, missing, partial, oversize, checksum) the same way and repair links the same way."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sparkrun.models.check import CacheCheck, FileState, check_cache, check_script_params, parse_check_events
from sparkrun.models.layout import RepoCache, link_snapshot_file
from sparkrun.models.manifest import ManifestFile, ModelManifest
from sparkrun.shell import render_script
from sparkrun.transport.protocol import parse_output

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONTENT = {
    "config.json": b'{"model_type": "llama"}',
    "model.safetensors": b"W" * 5000,
    "tokenizer.json": b'{"version": "1.0"}',
    "sub dir/file with space.txt": b"spaces are fine",
    "nested/deeper/part.bin": b"P" * 300,
    "big.bin": b"B" * 200,
    "changed.bin": b"C" * 100,
}
LFS = {"model.safetensors", "nested/deeper/part.bin", "big.bin", "changed.bin"}


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def manifest_file(path: str, data: bytes) -> ManifestFile:
    if path in LFS:
        sha = hashlib.sha256(data).hexdigest()
        return ManifestFile(path, len(data), sha, sha, git_blob_id(b"pointer " + path.encode()))
    return ManifestFile(path, len(data), git_blob_id(data), None, git_blob_id(data))


MANIFEST = ModelManifest(
    "test-org/checked", "main", COMMIT, "vllm-distributed", tuple(manifest_file(p, d) for p, d in CONTENT.items())
)


def populate(hub_dir: Path) -> RepoCache:
    """A cache where each file is in a different state (see the test names)."""
    cache = RepoCache(hub_dir, MANIFEST.repo_id)
    for item in MANIFEST.files:
        if item.path == "tokenizer.json":
            continue  # missing
        blob = cache.blob(item.blob)
        blob.parent.mkdir(parents=True, exist_ok=True)
        data = CONTENT[item.path]
        if item.path == "nested/deeper/part.bin":
            data = data[:120]  # partial
        elif item.path == "big.bin":
            data = data + b"extra"  # oversize
        elif item.path == "changed.bin":
            data = b"D" * len(data)  # same size, other content
        blob.write_bytes(data)
        if item.path != "model.safetensors":  # unlinked: the blob is there, the snapshot link is not
            link_snapshot_file(cache, COMMIT, item.path, item.blob)
    return cache


def run_check_script(
    hub_dir: str, home: Path, *, verify: bool = False, fix: bool = False, path: str | None = None
) -> CacheCheck:
    script = render_script("model_check", check_script_params(MANIFEST, hub_dir, verify=verify, fix_links=fix))
    env = {**os.environ, "HOME": str(home), "PATH": path or os.environ["PATH"]}
    proc = subprocess.run(["bash", "-s"], input=script.text, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return parse_check_events(MANIFEST, parse_output(proc.stdout).events)


def states(check: CacheCheck) -> dict[str, FileState]:
    return {f.path: f.state for f in check.files}


EXPECTED = {
    "config.json": FileState.PRESENT,
    "model.safetensors": FileState.UNLINKED,
    "tokenizer.json": FileState.MISSING,
    "sub dir/file with space.txt": FileState.PRESENT,
    "nested/deeper/part.bin": FileState.PARTIAL,
    "big.bin": FileState.OVERSIZE,
    "changed.bin": FileState.PRESENT,  # same size: only a checksum tells
}


def test_python_check_reports_each_state(tmp_path: Path) -> None:
    populate(tmp_path)
    check = check_cache(tmp_path, MANIFEST)
    assert states(check) == EXPECTED
    assert check.missing == ("tokenizer.json",)
    assert check.corrupt == ("nested/deeper/part.bin", "big.bin")
    assert check.unlinked == ("model.safetensors",)
    assert check.ref_state == "missing" and not check.complete
    assert check.bytes_to_fetch == len(CONTENT["tokenizer.json"]) + 300 + 200


def test_verifying_finds_changed_content(tmp_path: Path) -> None:
    populate(tmp_path)
    assert states(check_cache(tmp_path, MANIFEST, verify=True))["changed.bin"] is FileState.CHECKSUM


def test_the_script_agrees_with_python(tmp_path: Path) -> None:
    populate(tmp_path / "hub")
    for verify in (False, True):
        assert run_check_script(str(tmp_path / "hub"), tmp_path, verify=verify) == check_cache(
            tmp_path / "hub", MANIFEST, verify=verify
        )


def test_the_script_expands_a_tilde_hub_dir_on_the_host(tmp_path: Path) -> None:
    populate(tmp_path / ".cache" / "huggingface" / "hub")
    assert states(run_check_script("~/.cache/huggingface/hub", tmp_path)) == EXPECTED


def test_the_script_verifies_sha256_without_openssl(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "stat", "sha256sum", "sha1sum", "cat", "mkdir", "dirname", "ln", "mv", "awk"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    populate(tmp_path / "hub")
    check = run_check_script(str(tmp_path / "hub"), tmp_path, verify=True, path=str(tools))
    assert check == check_cache(tmp_path / "hub", MANIFEST, verify=True)
    assert states(check)["changed.bin"] is FileState.CHECKSUM


def test_the_script_verifies_git_blob_ids_of_small_files(tmp_path: Path) -> None:
    cache = populate(tmp_path)
    config = MANIFEST.file("config.json")
    assert config is not None
    cache.blob(config.blob).write_bytes(b'{"model_type": "LLAMA"}')  # same length
    assert states(run_check_script(str(tmp_path), tmp_path, verify=True))["config.json"] is FileState.CHECKSUM


@pytest.mark.parametrize("runner", ["python", "bash"])
def test_fixing_links_makes_relative_links_and_writes_the_ref(tmp_path: Path, runner: str) -> None:
    cache = populate(tmp_path)
    if runner == "python":
        check = check_cache(tmp_path, MANIFEST, fix_links=True)
    else:
        check = run_check_script(str(tmp_path), tmp_path, fix=True)
    assert states(check)["model.safetensors"] is FileState.PRESENT
    item = MANIFEST.file("model.safetensors")
    assert item is not None
    assert os.readlink(cache.snapshot_file(COMMIT, "model.safetensors")) == f"../../blobs/{item.blob}"
    assert cache.ref("main").read_text() == COMMIT
    assert check.ref_state == "fixed"
    assert run_check_script(str(tmp_path), tmp_path).ref_state == "ok"


def test_a_nested_link_made_by_the_script_climbs_the_right_number_of_levels(tmp_path: Path) -> None:
    cache = RepoCache(tmp_path, MANIFEST.repo_id)
    item = MANIFEST.file("sub dir/file with space.txt")
    assert item is not None
    cache.blob(item.blob).parent.mkdir(parents=True)
    cache.blob(item.blob).write_bytes(CONTENT[item.path])
    run_check_script(str(tmp_path), tmp_path, fix=True)
    pointer = cache.snapshot_file(COMMIT, item.path)
    assert os.readlink(pointer) == f"../../../blobs/{item.blob}"
    assert pointer.read_bytes() == CONTENT[item.path]


def test_a_snapshot_of_plain_files_counts_as_present(tmp_path: Path) -> None:
    # Copies made with rsync --copy-links (the older tool) hold regular files instead of links.
    cache = RepoCache(tmp_path, MANIFEST.repo_id)
    for path, data in CONTENT.items():
        target = cache.snapshot_file(COMMIT, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    assert check_cache(tmp_path, MANIFEST, verify=True).present == tuple(CONTENT)
    assert run_check_script(str(tmp_path), tmp_path, verify=True).present == tuple(CONTENT)


def test_truncated_script_output_counts_the_unreported_files_as_missing() -> None:
    check = parse_check_events(MANIFEST, [("model-file", "present 23 config.json")])
    assert check.present == ("config.json",)
    assert len(check.missing) == len(CONTENT) - 1


def test_the_rendered_script_is_shellcheck_clean(tmp_path: Path) -> None:
    script = render_script("model_check", check_script_params(MANIFEST, "/srv/hf/hub", verify=True, fix_links=True))
    path = tmp_path / "model_check.sh"
    path.write_text(script.text)
    shellcheck = Path(sys.executable).parent / "shellcheck"
    proc = subprocess.run([str(shellcheck), "--shell=bash", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
