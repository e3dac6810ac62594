"""``python -m deepclust.cli``: the ``deepclust`` command without installing the package."""

import sys

from deepclust.cli._main import main

sys.exit(main())
