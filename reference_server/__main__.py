"""``python -m reference_server``: the ``storno-security`` command line."""

from reference_server.cli import main

raise SystemExit(main())
