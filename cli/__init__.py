"""The ``nctk`` command line: argument parsing, progress and atomic file output; no codec logic."""
