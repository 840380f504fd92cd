"""`python -m ranomaly`: the same as the `ranomaly` command."""

import sys

from ranomaly.cli import main

sys.exit(main())
