"""``python -m cli`` runs the nctk command line."""

import sys

from cli.main import main

sys.exit(main())
