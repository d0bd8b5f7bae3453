"""Recipes and registries: load (v2, migrated v1), validate, render, resolve, trust.

Import what you need from the submodules (`sparkrun.recipes.api` is the surface the `run` command uses); this package
itself imports nothing, so `import sparkrun.recipes.api` stays cheap.
"""
