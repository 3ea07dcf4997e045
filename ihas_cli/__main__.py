"""`python -m ihas_cli`: the `ihas` command."""

import sys

from ihas_cli.main import main

sys.exit(main())
