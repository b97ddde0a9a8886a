"""Question ids that are safe everywhere a pipeline question travels: Kafka keys, Redis keys
(``oq:{<id>}:h`` — a brace would break the hash tag), log lines, and sample ids
``<question id>/<index>`` (so ``/`` would make a sample id ambiguous).

:func:`check_question_id` is the one check every entry point of the pipeline calls: the
controller's gRPC ``Submit`` / ``GetResult`` / ``Cancel``, every question event the controller
consumes from Kafka, the generator's ``Generate`` request and ``optscale submit``. The embedded
``optscale solve`` takes dataset ids as they are (the MATH files use ``test/algebra/1.json``;
nothing there parses a sample id back); ``optscale submit --dataset`` sends them as
:func:`pipeline_id` (``/`` -> ``:``).
"""

from __future__ import annotations

import re

from optscale.errors import InvalidArgumentError

MAX_QUESTION_ID_LENGTH = 256
QUESTION_ID_CHARACTERS = "ASCII letters, digits and . _ : -"
_SAFE = re.compile(r"[A-Za-z0-9._:-]+")


def check_question_id(question_id: object, field: str = "question_id") -> str:
    """``question_id`` if it is 1 to 256 of the safe characters, else
    :class:`InvalidArgumentError` naming ``field``."""
    if not isinstance(question_id, str):
        raise InvalidArgumentError(field, question_id, "must be a string")
    if not 1 <= len(question_id) <= MAX_QUESTION_ID_LENGTH:
        raise InvalidArgumentError(
            field, question_id, f"must be 1 to {MAX_QUESTION_ID_LENGTH} characters"
        )
    if _SAFE.fullmatch(question_id) is None:
        bad = sorted({c for c in question_id if _SAFE.fullmatch(c) is None})
        raise InvalidArgumentError(
            field,
            question_id,
            f"may only contain {QUESTION_ID_CHARACTERS} (found {''.join(bad)!r})",
        )
    return question_id


def pipeline_id(dataset_id: str) -> str:
    """The pipeline id of a benchmark question: its dataset id with ``/`` as ``:`` (the MATH
    files' ``test/algebra/1.json`` becomes ``test:algebra:1.json``; no dataset id has a ``:``,
    so the mapping is one to one and ``str.replace(":", "/")`` undoes it). Checked."""
    return check_question_id(dataset_id.replace("/", ":"), "id")
