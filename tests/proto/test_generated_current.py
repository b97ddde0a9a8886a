"""The committed generated code in optscale/v1 matches proto/ (regenerate: make proto)."""

from __future__ import annotations

from optscale import protogen
from optscale.v1 import events_pb2, generator_pb2


def test_generated_code_is_current() -> None:
    assert protogen.main(["--check"]) == 0, "run `python -m optscale.protogen`"


def test_question_event_round_trip_and_oneof() -> None:
    ev = events_pb2.QuestionEvent(question_id="q", schema_version=1)
    ev.scored.scored.candidate.sample_id = "q/0"
    ev.scored.scored.score = 0.75
    back = events_pb2.QuestionEvent.FromString(ev.SerializeToString())
    assert back.WhichOneof("event") == "scored" and back.scored.scored.score == 0.75
    req = generator_pb2.GenerateRequest(question_id="q", k=2)
    assert not req.params.HasField("seed")
