"""Entry point: `python -m bench` (what `make bench` runs)."""

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
