"""pytest session setup: install the bittorrent-dht interop peer when npm is available.

With it, ``pip install '.[test]' && pytest`` runs every test on a fresh machine; without
npm the bittorrent-dht interop tests skip (or fail when ``CI`` is set).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

INTEROP = Path(__file__).parent / "interop"


def pytest_sessionstart(session: object) -> None:
    """Run ``npm ci`` in tests/interop once, if bittorrent-dht is not installed there."""
    npm = shutil.which("npm")
    if npm is None or (INTEROP / "node_modules" / "bittorrent-dht").is_dir():
        return
    try:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=INTEROP,
            timeout=300,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as e:
        print(f"could not install the bittorrent-dht interop peer: {e}", file=sys.stderr)
