"""The database the migrations built matches the ORM models: no change slips in unmigrated."""

import subprocess
import sys
from pathlib import Path


def test_models_match_migrations() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "check"],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr
