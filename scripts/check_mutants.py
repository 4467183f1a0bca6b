"""Apply the two mutants of the privacy review to a copy of the source and show that the sensitivity tests fail.

Run: ``python scripts/check_mutants.py`` (exit code 0 when every mutant is caught).

1. The rating-unit item statistic keeps the user's own offset (true sensitivity ≈ 1.01× the claim).
2. The rating-unit DP-ALS factor statistics lose their factor 2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = [
    (
        "rating-unit item statistic keeps the user offset",
        "tests/privacy/test_releases.py",
        '        if self.unit == "user":\n            offset = segment_sums(val - mu, indptr) / (n_u + self.user_reg)',
        "        if True:\n            offset = segment_sums(val - mu, indptr) / (n_u + self.user_reg)",
    ),
    (
        "rating-unit factor statistics without the factor 2",
        "tests/privacy/test_release_factor_stats.py",
        '        return 2.0 * c if self.unit == "rating" else c',
        "        return c",
    ),
]


def main() -> int:
    caught = 0
    for name, tests, old, new in MUTANTS:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(ROOT / "src", Path(tmp) / "src")
            p = Path(tmp) / "src" / "dprec" / "models" / "releases.py"
            text = p.read_text()
            assert old in text, f"mutant {name!r} no longer applies"
            p.write_text(text.replace(old, new, 1))
            env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "src"))
            # the mutant tests monkeypatch the same defect themselves: run the plain neighbour checks only
            r = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not mutant", str(ROOT / tests)],
                env=env,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            failed = r.returncode != 0
            caught += failed
            last = [line for line in r.stdout.splitlines() if line.strip()][-1]
            print(f"{'caught ' if failed else 'MISSED '} {name}: {last}")
    return 0 if caught == len(MUTANTS) else 1


if __name__ == "__main__":
    sys.exit(main())
