"""`python -m loadtest`: see `loadtest.cli`."""

from .cli import main

raise SystemExit(main())
