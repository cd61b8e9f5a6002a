"""`python -m mnist_pl COMMAND ...`: see `python -m mnist_pl --help`."""

import sys

from .cli import main

sys.exit(main())
