"""``python -m groove_sc.benchmark --config FILE --out DIR`` (same as ``groove-sc benchmark``)."""

import sys

from ._cli import cli_main

if __name__ == "__main__":
    sys.exit(cli_main())
