"""`python -m danmaku_web.storm`: the same as the `danmaku-storm` command."""

import sys

from danmaku_web.storm.cli import main

sys.exit(main())
