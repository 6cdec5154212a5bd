"""Where the shared DAVIS sequences are: ``VSEEK_DAVIS_DIR``, else ``shared/data/davis`` beside the
repository (as on the developers' machines and in CI), else the workplace's ``/work/shared``."""

import os
from pathlib import Path


def _find() -> Path:
    if os.environ.get("VSEEK_DAVIS_DIR"):
        return Path(os.environ["VSEEK_DAVIS_DIR"])
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis"
    return beside if beside.is_dir() else Path("/work/shared/data/davis")


DAVIS = _find()
