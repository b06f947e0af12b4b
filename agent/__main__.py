"""`python -m agent` is the `inferwatch` command."""

import sys

from agent.cli import main

sys.exit(main())
