#!/usr/bin/env python3
"""Run every recipe of the public corpus for real on the test cluster (root); see scripts/corpus_e2e/cli.py.

Usage: .venv/bin/python scripts/corpus-e2e.py [--corpus DIR] [--hosts N] [--timeout S] [--only TEXT] [--out DIR]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_e2e.cli import main

sys.exit(main())
