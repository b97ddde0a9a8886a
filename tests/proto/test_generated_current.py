"""The committed generated code in optscale/v1 matches proto/ (regenerate: make proto)."""

from __future__ import annotations

from optscale import protogen
from optscale.v1 import events_pb2, generator_pb2


def test_generated_code_is_current() -> None:
    assert protogen.main(["--check"]) == 0, "run `python -m optscale.protogen`"


def test_question_event_round_trip_and_oneof() -> None:
    ev = events_pb2.QuestionEvent(question_id="q", schema_version=1)
    ev.scored.sample_id, ev.scored.score = "q/0", 0.75  # by reference: no candidate inside
    back = events_pb2.QuestionEvent.FromString(ev.SerializeToString())
    assert back.WhichOneof("event") == "scored" and back.scored.score == 0.75
    assert not back.scored.HasField("scored")
    done = generator_pb2.GenerateEvent(done=generator_pb2.SampleDone(sample_id="q/0"))
    assert done.WhichOneof("sample") == "done" and not done.HasField("candidate")
    req = generator_pb2.GenerateRequest(question_id="q", k=2)
    assert not req.params.HasField("seed")
