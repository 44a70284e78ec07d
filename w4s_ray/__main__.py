import sys

from w4s_ray.cli import main

sys.exit(main())
