"""A plugin that fails at import time, as a plugin with a missing dependency or a syntax error would."""

raise RuntimeError("sparkrun-broken-runtime fails to import on purpose (test fixture)")
