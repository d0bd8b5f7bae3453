"""Recipes and registries: load (v2, migrated v1), resolve for a launch, render, validate, find, trust.

Import what you need from the submodules (`sparkrun.recipes.resolved.resolve` is the one path `run`, `run --dry-run`
and `show` take); this package itself imports nothing, so `import sparkrun.recipes.settings_keys` stays cheap.
"""
