"""Launching a job: plan its containers (pure), probe the hosts, start the ranks group by group, wait until ready."""
