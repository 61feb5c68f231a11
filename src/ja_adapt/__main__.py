import sys

from ja_adapt.cli import main

sys.exit(main())
