"""`python -m faker_twin`."""

import sys

from faker_twin.cli import main

sys.exit(main())
