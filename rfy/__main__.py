import sys

from rfy.cli import main

if __name__ == "__main__":  # a spawned worker process imports this module too, and must not run the CLI again
    sys.exit(main())
