"""The wizard: its steps in order from one read of the hosts' facts, each shown (and confirmed) before it runs,
nothing-to-do steps skipped, CX7 skipped without a subnet, then the check; a new cluster is saved unless a dry run."""

from __future__ import annotations

import pytest
from setup_fakes import HOSTS, FakeHosts, make_setup

from sparkrun.clusters import cluster_path, load_cluster
from sparkrun.errors import InputError
from sparkrun.setup import Prompts, SetupOptions, new_cluster, run_wizard
from sparkrun.transport.fake import events

H1, H2, H3 = HOSTS
NO_CX7_ADDRESS = {"ib": "rocep1s0f0 1 ACTIVE Ethernet enp1s0f0np0 1500 up -", "cx7_file": "no"}


def test_a_prepared_cluster_skips_every_step_and_passes() -> None:
    fake = FakeHosts()
    setup, _seen = make_setup(fake)
    result = run_wizard(setup, SetupOptions(), Prompts(), yes=True, dry_run=False, cluster="lab")
    assert [(s.action, s.skipped) for s in result.steps] == [
        ("ssh", "nothing to do"),
        ("docker-group", "nothing to do"),
        ("fix-permissions", "nothing to do"),
        ("earlyoom", "nothing to do"),
        ("cx7", "nothing to do"),
    ]
    assert result.report is not None and result.report.ok
    assert sorted(fake.ran("setup_check")) == sorted(HOSTS * 2)  # once to plan, once to check


def test_each_step_is_shown_and_asked_before_it_runs_and_a_no_skips_it() -> None:
    fake = FakeHosts(**{"10_0_0_11": {"docker_member": "no", "earlyoom": "missing inactive "}})
    fake.on("setup_host", events(("changed", "done")))
    setup, _seen = make_setup(fake)
    questions: list[str] = []

    def confirm(question: str) -> bool:
        questions.append(question)
        return question.startswith("earlyoom")

    result = run_wizard(setup, SetupOptions(), Prompts(confirm=confirm), yes=False, dry_run=False, cluster="lab")
    assert [q.splitlines()[0] for q in questions] == ["docker-group:", "earlyoom:"]
    assert f"  {H1}: add spark to group docker (with sudo)" in questions[0]
    steps = {s.action: s for s in result.steps}
    assert steps["docker-group"].skipped == "declined" and steps["earlyoom"].result is not None
    assert fake.ran("setup_host") == [H1]  # only earlyoom ran


def test_cx7_without_a_subnet_is_skipped_with_the_reason_and_the_check_still_names_the_fix() -> None:
    fake = FakeHosts(**{f"10_0_0_{n}": NO_CX7_ADDRESS for n in (11, 12, 13)})
    setup, _seen = make_setup(fake)
    result = run_wizard(setup, SetupOptions(), Prompts(), yes=True, dry_run=False, cluster="lab")
    cx7 = result.steps[-1]
    assert cx7.skipped is not None and "--cx7-subnet" in cx7.skipped
    assert result.report is not None and {line.check for line in result.report.failed} == {"cx7"}


def test_a_dry_run_plans_every_step_and_changes_nothing() -> None:
    fake = FakeHosts(**{"10_0_0_12": {"docker_member": "no", **NO_CX7_ADDRESS}})
    setup, _seen = make_setup(fake)
    options = SetupOptions(subnets=("192.168.177.0/24",))
    result = run_wizard(setup, options, Prompts(), yes=True, dry_run=True, cluster="lab")
    assert {s.action: s.skipped for s in result.steps}["docker-group"] == "dry run"
    assert all(s.plan is not None for s in result.steps if s.skipped in ("dry run", "nothing to do"))
    assert result.report is None
    assert {s.name for _h, s in fake.transport.scripts} == {"setup_check"}


def test_a_new_cluster_is_saved_with_its_user_and_key_unless_it_is_a_dry_run() -> None:
    planned = new_cluster("lab2", "10.0.0.21,10.0.0.22", user="ops", identity_file="~/.ssh/k", dry_run=True)
    assert planned.hosts == ("10.0.0.21", "10.0.0.22") and not cluster_path("lab2").exists()
    new_cluster("lab2", "10.0.0.21,10.0.0.22", user="ops", identity_file="~/.ssh/k", dry_run=False)
    saved = load_cluster("lab2")
    assert (
        saved.hosts == ("10.0.0.21", "10.0.0.22") and saved.ssh.user == "ops" and saved.ssh.identity_file == "~/.ssh/k"
    )
    with pytest.raises(InputError, match="already exists"):
        new_cluster("lab2", "10.0.0.23", user=None, identity_file=None, dry_run=False)
