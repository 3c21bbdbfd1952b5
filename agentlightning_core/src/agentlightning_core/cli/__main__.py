import sys

from agentlightning_core.cli import main

sys.exit(main())
