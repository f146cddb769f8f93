"""``python -m workers.cli`` runs the dragonfly command line."""

import sys

from workers.cli import main

sys.exit(main())
