"""``python -m ccdaemon``: the command line."""

import sys

from ccdaemon.cli import main

sys.exit(main())
