"""``python -m nctk.cli`` runs the nctk command line."""

import sys

try:
    from nctk.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while the command line itself is imported: main() is not running yet
    if sys.stderr is not None:
        sys.stderr.write("nctk: interrupted\n")
    sys.exit(130)

sys.exit(main())
