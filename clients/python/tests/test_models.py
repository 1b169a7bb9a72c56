"""The wire form of a :class:`Message` (no gateway needed)."""

from __future__ import annotations

from sluice_client import ingest_pb2 as pb
from sluice_client.models import Message


def test_mms_fields_reach_the_wire_and_unset_ones_stay_unset() -> None:
    m = Message(
        to="+14155550100",
        media=["ab" * 32],
        mms_service_code="acme-vip",
        mms_linked_id="mo-7",
        mms_message_class="personal",
        mms_priority="high",
        mms_read_reply=False,
        mms_earliest_delivery_ms=1_800_000_000_000,
    ).to_proto()
    assert m.mms_service_code == "acme-vip"
    assert m.mms_linked_id == "mo-7"
    assert m.mms_message_class == pb.MMS_MESSAGE_CLASS_PERSONAL
    assert m.mms_priority == pb.MMS_PRIORITY_HIGH
    assert m.HasField("mms_read_reply") and m.mms_read_reply is False
    assert not m.HasField("mms_distribution_indicator")
    assert m.mms_earliest_delivery_ms == 1_800_000_000_000

    plain = Message(to="+14155550100", text="hi").to_proto()
    assert plain.mms_message_class == pb.MMS_MESSAGE_CLASS_UNSPECIFIED
    assert plain.mms_priority == pb.MMS_PRIORITY_UNSPECIFIED
    assert not plain.HasField("mms_read_reply")
