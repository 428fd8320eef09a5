"""The browser client's rules (sdk/js/deelrx.test.mjs) run under node's own test runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SDK_JS = Path(__file__).resolve().parents[3] / "sdk" / "js"


def test_browser_sdk_rules_hold_under_node() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is missing: `make test` installs Debian's nodejs (scripts/install_test_tools.sh)"
    done = subprocess.run(
        [node, "--test", str(SDK_JS / "deelrx.test.mjs")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 6" in done.stdout, done.stdout[-2000:]
