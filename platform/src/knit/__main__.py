import sys

from knit.cli import main

sys.exit(main())
