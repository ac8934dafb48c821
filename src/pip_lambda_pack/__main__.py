"""``python -m pip_lambda_pack``."""

import sys

from .cli import main

sys.exit(main())
