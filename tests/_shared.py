"""Where the shared reference material lives: the `shared` folder beside the project root.

Tests that read it (TensorFlow fixtures, golden files) are marked ``@requires_shared`` and skip when
it is absent, e.g. in a checkout of the repository alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

requires_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")
