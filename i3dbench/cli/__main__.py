"""``python -m i3dbench.cli`` (what ``torchrun ... -m i3dbench.cli train`` runs)."""

import sys

from . import main

sys.exit(main())
