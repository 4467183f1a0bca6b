"""``python -m dprec.cli``: the ``dprec`` command."""

import sys

from . import main

sys.exit(main())
