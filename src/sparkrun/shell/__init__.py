"""Bash scripts run on hosts (package data). Each is valid bash on its own; values reach it only through the quoted
preamble built by `sparkrun.orchestration.scripts.render_script`."""
