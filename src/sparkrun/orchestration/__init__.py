"""Everything that touches hosts: transport (SSH or local bash), scripts, plans, launch, status, logs, stop.

Remote effects go through `transport.Transport` only; every script it runs is a real `.sh` file from
`sparkrun/shell/` with values supplied by a quoted preamble (`scripts.render_script`).
"""
