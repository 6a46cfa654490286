"""``python -m ccdaemon.cli``: the command line, as ``python -m ccdaemon``."""

import sys

from ccdaemon.cli import main

sys.exit(main())
