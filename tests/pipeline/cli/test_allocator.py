"""The allocator settings every command starts with, checked in a fresh process (numpy reads its setting once,
when imported)."""

import os
import subprocess
import sys

import pytest

PROBE = ("from pipeline.cli.allocator import tune_allocator; tuned = tune_allocator(); "
         "import numpy._core.multiarray as m; print(tuned, m._get_madvise_hugepage())")


def probe(**env: str) -> str:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("NERO_MALLOC", "NUMPY_MADVISE_HUGEPAGE")}
    return subprocess.run([sys.executable, "-c", PROBE], env={**environment, **env}, capture_output=True,
                          text=True, check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and numpy's page advice are Linux's")
def test_commands_start_with_glibc_tuned_and_numpys_huge_page_advice_off():
    assert probe() == ["True", "False"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and numpy's page advice are Linux's")
def test_nero_malloc_default_leaves_both_alone_and_an_explicit_numpy_setting_wins():
    assert probe(NERO_MALLOC="default") == ["False", "True"]
    assert probe(NUMPY_MADVISE_HUGEPAGE="1") == ["True", "True"]
