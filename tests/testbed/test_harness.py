"""The pytest harness's pure helpers (no test cluster needed)."""

from __future__ import annotations

from pathlib import Path

from testbed.harness import find_leftovers, state_flags


def test_state_flags_spell_python_values_as_testbed_flags() -> None:
    flags = state_flags(
        {"docker_group": False, "mesh": True, "sudo": "password", "cache_size": "64M", "clock": 300, "hf_cache": "ok"}
    )
    assert flags == ["docker-group=no", "mesh=yes", "sudo=password", "cache-size=64M", "clock=+300", "hf-cache=ok"]
    assert state_flags({"clock": -45}) == ["clock=-45"]


def test_leftovers_include_per_host_dirs_and_registry_data(tmp_path: Path) -> None:
    (tmp_path / "h3" / "etc.upper").mkdir(parents=True)
    (tmp_path / "registry" / "data").mkdir(parents=True)
    (tmp_path / "keys").mkdir()  # kept across down/up: not a leftover
    found = find_leftovers(tmp_path)
    assert f"state dir {tmp_path}/h3" in found
    assert f"registry data {tmp_path}/registry" in found
    assert not any("keys" in f for f in found)
