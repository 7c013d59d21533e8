"""`python -m mpc_credit` runs the command line."""

import sys

from mpc_credit.cli import main

sys.exit(main())
