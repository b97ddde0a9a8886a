import sys

from optscale.cli import main

sys.exit(main())
