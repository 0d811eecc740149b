"""`python -m faker_twin`."""

import sys

from faker_twin.server import main

sys.exit(main())
