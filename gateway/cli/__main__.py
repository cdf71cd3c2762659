"""`python -m gateway.cli ...`, as benchmarks and tests run it: the same as `smppgw ...`."""

import sys

from gateway.cli import main

sys.exit(main())
