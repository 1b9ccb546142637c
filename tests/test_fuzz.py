"""The fuzz target of fuzz/answer.py in CI: every seed of the corpus (real queries) and a
short budget of atheris' coverage-guided mutations of them, with a fixed seed so that a
run is repeatable. bench/fuzz.py runs the same target for 10 million inputs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.answer import HERE, check, seeds
from tests.support import IN_CI, ROOT

pytestmark = pytest.mark.timeout(300)


def test_the_corpus_holds_real_queries_of_each_client() -> None:
    names = {path.name.split("-")[0] for path in seeds()}
    assert {"dig", "kdig", "nsupdate", "knsupdate", "dnspython"} <= names


@pytest.mark.parametrize("seed", seeds(), ids=lambda path: path.stem)
def test_every_seed_is_answered_well(seed: Path) -> None:
    check(seed.read_bytes())


@pytest.mark.slow
def test_a_short_budget_of_coverage_guided_mutations(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        message = "atheris is not installed (pip install -e '.[test]' on Linux x86-64, Python < 3.13)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    command = [sys.executable, str(HERE / "answer.py"), "-seed=1", "-runs=3000", "-timeout=10"]
    command += ["-rss_limit_mb=1024", f"-artifact_prefix={tmp_path}/", str(corpus), str(HERE / "corpus")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Done 3000 runs" in result.stderr
