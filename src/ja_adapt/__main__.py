import sys

from ja_adapt.apps.cli import main

sys.exit(main())
