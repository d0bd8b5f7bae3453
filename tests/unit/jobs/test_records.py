"""Job records: ids are stable, records are written atomically, pending operations show and go stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkrun.jobs.identity import container_name, job_id, labels
from sparkrun.jobs.inventory import Inventory, JobView, parse_containers
from sparkrun.jobs.records import JobBusy, JobStore


def test_job_ids_depend_on_content_not_key_order() -> None:
    assert job_id({"a": 1, "b": [1, 2]}) == job_id({"b": [1, 2], "a": 1})
    assert job_id({"a": 1}) != job_id({"a": 2})
    assert len(job_id({})) == 12


def test_container_names_and_labels_identify_the_rank() -> None:
    assert container_name("abc", "head", 0) == "sparkrun_abc_head"
    assert container_name("abc", "worker", 3) == "sparkrun_abc_worker3"
    lab = labels("abc", 1, "worker", {"recipe": "r", "cluster": None, "port": 8000})
    assert lab == {
        "sparkrun.job": "abc",
        "sparkrun.rank": "1",
        "sparkrun.role": "worker",
        "sparkrun.recipe": "r",
        "sparkrun.port": "8000",
    }


def test_records_round_trip_and_leave_no_temporary_files(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    store.save("j1", {"recipe": "r", "hosts": ["a"], "ready": True})
    assert store.load("j1") == {"job": "j1", "recipe": "r", "hosts": ["a"], "ready": True}
    assert [p.name for p in (tmp_path / "jobs").iterdir()] == ["j1.json"]
    store.forget("j1")
    assert store.load("j1") is None


def test_a_pending_operation_is_visible_while_it_runs_and_gone_after(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    with store.pending("j1", "launch", recipe="r"):
        (op,) = store.pending_ops()
        assert (op.job, op.operation, op.pid, op.stale) == ("j1", "launch", os.getpid(), False)
        assert op.data == {"recipe": "r"}
    assert store.pending_ops() == []


def test_a_second_launch_of_the_same_job_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time\n"
                "from pathlib import Path\n"
                "from sparkrun.jobs.records import JobBusy, JobStore\n"
                f"with JobStore(Path({str(tmp_path)!r})).pending('j1', 'launch', recipe='r'):\n"
                "    print('held', flush=True)\n"
                "    time.sleep(30)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        store = JobStore(tmp_path)
        with pytest.raises(JobBusy) as err, store.pending("j1", "launch"):
            pass
        assert f"process {holder.pid}" in str(err.value)
        (op,) = store.pending_ops()
        assert not op.stale
    finally:
        holder.kill()
        holder.wait()
    # The holder died without cleaning up: its record is stale, and the job can be launched again.
    store = JobStore(tmp_path)
    assert [op.stale for op in store.pending_ops()] == [True]
    with store.pending("j1", "launch"):
        pass


def test_a_pending_operation_whose_process_died_is_stale(tmp_path: Path) -> None:
    code = "import os; print(os.getpid())"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    (tmp_path / "pending").mkdir()
    (tmp_path / "pending" / "j2.json").write_text(
        json.dumps({"job": "j2", "operation": "launch", "pid": pid, "started_at": 0})
    )
    (op,) = JobStore(tmp_path).pending_ops()
    assert op.stale


def test_inventory_groups_containers_by_job_and_finds_jobs_by_prefix_or_recipe() -> None:
    def entry(rank: int, state: str) -> dict[str, object]:
        return {
            "Names": [f"/sparkrun_abc123456789_r{rank}"],
            "Image": "img",
            "State": state,
            "Status": "Up 3 minutes" if state == "running" else "Exited (1) 2 seconds ago",
            "Created": 1795454578,
            "Labels": {
                "sparkrun.job": "abc123456789",
                "sparkrun.rank": str(rank),
                "sparkrun.role": "head" if rank == 0 else "worker",
                "sparkrun.recipe": "qwen",
                "sparkrun.hosts": "h1,h2",
            },
        }

    (head,) = parse_containers("h1", json.dumps([entry(0, "running"), {"Names": ["/other"], "Labels": {}}]))
    (worker,) = parse_containers("h2", json.dumps([entry(1, "exited")]))
    assert head.name == "sparkrun_abc123456789_r0"
    assert (head.exit_code, worker.exit_code) == (0, 1)
    view = JobView(job="abc123456789", labels=head.labels, containers=[head, worker])
    assert view.state(set()) == "degraded"
    assert view.state({"h2"}) == "unknown"
    inv = Inventory(hosts=[], jobs=[view])
    assert inv.find("abc1") is view
    assert inv.find("qwen") is view
    assert parse_containers("h1", "not json") == []
