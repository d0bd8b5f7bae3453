"""`python -m corpus_e2e` (with scripts/ on PYTHONPATH): the same as scripts/corpus-e2e.py."""

import sys

from corpus_e2e.cli import main

sys.exit(main())
