"""The example's tests import only the example and the SDK (as an app author's would)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[2] / "sdk" / "python")]
