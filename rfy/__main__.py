import sys

from rfy.cli import main

sys.exit(main())
