"""`python -m refiller`: the same as `mini-forge refiller`."""

import sys

from mini_forge.cli import main

sys.exit(main(["refiller", *sys.argv[1:]]))
