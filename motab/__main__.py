import sys

from motab.cli import main

sys.exit(main(sys.argv[1:]))
