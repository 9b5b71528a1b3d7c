import sys

from pynfct.cli.signals import as_program

as_program()
from pynfct.cli.main import main  # noqa: E402

sys.exit(main())
