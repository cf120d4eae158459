"""``python -m sbi_astro.cli``: the same as the ``sbi-astro`` command."""

import sys

from . import main

sys.exit(main())
