"""`python -m api`: the same as `mini-forge api`."""

import sys

from mini_forge.cli import main

sys.exit(main(["api", *sys.argv[1:]]))
