"""`python -m mpc_credit` runs the command line."""

import sys

from mpc_credit.cli.app import main

sys.exit(main())
