import sys

from pcloud_cli.main import main

sys.exit(main())
