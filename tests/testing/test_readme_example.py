"""The README's pytest example, run as a user would run it: copied out of the README into a
fresh directory and run by pytest in a subprocess, where only the installed plugin
(`datapolicy.testing.plugin`, entry point pytest11) provides `datapolicy_server`. If the README
or the plugin drifts, this fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

README = Path(__file__).parents[2] / "README.md"
MARKER = "<!-- datapolicy-testing-example -->"


def readme_example() -> str:
    text = README.read_text()
    found = re.search(re.escape(MARKER) + r"\n```python\n(.*?)\n```", text, re.DOTALL)
    assert found, f"no python block after {MARKER} in the README"
    return found.group(1) + "\n"


@pytest.mark.e2e  # pytest in a subprocess, whose plugin starts `datapolicy serve`
def test_the_readme_example_passes_as_written(pytester: pytest.Pytester):
    pytester.makepyfile(test_export=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(passed=2)
