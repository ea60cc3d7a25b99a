import sys

from benchmarks.perf.suite import main

sys.exit(main())
