"""Plan -> apply: pure planners build a `Plan` of `Step`s; `apply` runs it through a transport and emits events.

`--dry-run` prints a plan and stops (no connection is opened); a real run applies the same objects.
"""
