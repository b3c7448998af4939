"""`python -m collector` is the same as the `solar-collector` console script."""

import sys

from collector.cli import main

sys.exit(main())
