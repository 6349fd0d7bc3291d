"""`python -m audit` is the same program as the `mlaudit` console script."""

import sys

from audit.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
