"""``python -m statesock``: the same as the ``statesock`` command."""

import sys

from .tools.cli import main

sys.exit(main())
