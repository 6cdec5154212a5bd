"""Where the shared DAVIS sequences are: ``VSEEK_DAVIS_DIR``, else ``shared/data/davis`` beside the
repository (as on the developers' machines and in CI), so no test depends on one absolute path."""

import os
from pathlib import Path

DAVIS = Path(os.environ.get("VSEEK_DAVIS_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "davis")
