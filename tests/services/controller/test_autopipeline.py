"""The auto-pipeline's RESP packing (pure: no server)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from services.controller.autopipeline import _arg, _pack


@dataclass
class _Script:
    sha: str


def test_pack_writes_one_resp_array_per_call() -> None:
    batch = [
        (_Script("abc"), ["oq:{q}:h"], [3, "q/0", 0.25, "é"], None),
        (_Script("def"), [], [], None),
    ]
    assert _pack(batch) == (
        b"*8\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n1\r\n$8\r\noq:{q}:h\r\n"
        b"$1\r\n3\r\n$3\r\nq/0\r\n$4\r\n0.25\r\n$2\r\n\xc3\xa9\r\n"
        b"*3\r\n$7\r\nEVALSHA\r\n$3\r\ndef\r\n$1\r\n0\r\n"
    )


@pytest.mark.parametrize("bad", [None, True, [1], {"a": 1}])
def test_only_strings_bytes_and_numbers_are_sent(bad: object) -> None:
    with pytest.raises(TypeError, match="cannot send"):
        _arg(bad)
