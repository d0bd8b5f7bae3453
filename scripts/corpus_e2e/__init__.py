"""The corpus end-to-end run: every recipe of the public recipe corpus launched for real on the test cluster with the
stand-in engine image (see `corpus_e2e.cli`; entry point `scripts/corpus-e2e.py`, `make corpus-e2e`)."""
