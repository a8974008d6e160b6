"""``python -m nctk.cli`` runs the nctk command line."""

import sys

from nctk.cli.main import main

sys.exit(main())
