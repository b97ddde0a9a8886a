"""The paper's DSC and MR-Thinking numbers come from its released result files, and they are the
numbers of its printed table (so our docs quote files, not hand copies)."""

from __future__ import annotations

from pathlib import Path

import pytest

from optscale.errors import DataError, InvalidArgumentError
from optscale.paper_tables import DATASETS, paper_row, table_row


@pytest.fixture(scope="module")
def official(shared_datasets: Path) -> Path:
    return shared_datasets / "optscale_official"


@pytest.mark.parametrize("method", ["dsc", "mr-thinking"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_result_files_reproduce_the_printed_table(
    official: Path, method: str, dataset: str
) -> None:
    for n in (8, 16, 32, 64):
        got, printed = (
            paper_row(official, method, dataset, n),
            table_row(official, method, dataset, n),
        )
        assert round(100 * got.accuracy, 1) == pytest.approx(100 * printed.accuracy)
        assert round(got.tokens) == printed.tokens


def test_known_cells(official: Path) -> None:
    dsc = paper_row(official, "dsc", "MATH500", 8)
    assert (round(100 * dsc.accuracy, 1), round(dsc.tokens)) == (93.2, 13645)
    mr = paper_row(official, "mr-thinking", "GSM8K", 64)
    assert (round(100 * mr.accuracy, 1), round(mr.tokens)) == (88.2, 38305)


def test_bad_requests(official: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        paper_row(official, "bon", "MATH500", 8)
    with pytest.raises(InvalidArgumentError):
        paper_row(official, "dsc", "MATH", 8)
    with pytest.raises(DataError, match="N=3000"):
        paper_row(official, "dsc", "MATH500", 3000)
    with pytest.raises(DataError):
        table_row(tmp_path, "dsc", "MATH500", 8)
