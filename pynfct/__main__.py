import sys

from pynfct.cli.main import main

sys.exit(main())
