"""The corpus end-to-end program lives in scripts/corpus_e2e (a dev tool, not part of the package): import it from
there."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
