"""``python -m examples.local_executor``: see :func:`examples.local_executor.executor.main`."""

from __future__ import annotations

import sys

from examples.local_executor.executor import main

sys.exit(main())
