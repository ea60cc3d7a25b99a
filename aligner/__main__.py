import sys

from aligner.cli import main

if __name__ == "__main__":  # the bench's fork server imports the main module into every run it forks
    sys.exit(main())
