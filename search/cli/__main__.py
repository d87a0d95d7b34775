"""``python -m search.cli ...`` runs the ``tradetune`` command."""
import sys

from search.cli.commands import main

sys.exit(main())
