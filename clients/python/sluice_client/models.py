"""Plain typed values of the client API: what you submit (:class:`Message`),
what a batch answers per message (:class:`SubmitResult`), uploaded media
(:class:`Media`) and the events of a subscription (:class:`Event`, with a
:class:`Delivery`, :class:`Inbound` or :class:`OptChange` inside).

Enum values are the protocol's names in lower case without their prefix:
a delivery ``state`` is ``"delivered"``, ``"failed"``, ``"expired"``,
``"rejected"``, ``"unknown"``, ``"suppressed"`` or the non-terminal
``"submitted"``; a rejection ``reason`` keeps the protocol's upper-case name
(``"INVALID_NUMBER"``) as the gateway's API and docs spell it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from . import ingest_pb2 as pb

Priority = Literal["marketing", "transactional"]
ChannelPreference = Literal["auto", "sms", "mms"]
Fallback = Literal["sms_with_link", "sms_text_only", "none"]
MmsMessageClass = Literal["", "personal", "informational", "advertisement", "auto"]
MmsPriority = Literal["", "low", "normal", "high"]

_PRIORITY = {
    "marketing": pb.PRIORITY_MARKETING,
    "transactional": pb.PRIORITY_TRANSACTIONAL,
}
_CHANNEL = {"auto": pb.CHANNEL_AUTO, "sms": pb.CHANNEL_SMS, "mms": pb.CHANNEL_MMS}
_FALLBACK = {
    "sms_with_link": pb.FALLBACK_SMS_WITH_LINK,
    "sms_text_only": pb.FALLBACK_SMS_TEXT_ONLY,
    "none": pb.FALLBACK_NONE,
}
_MMS_CLASS = {
    "": pb.MMS_MESSAGE_CLASS_UNSPECIFIED,
    "personal": pb.MMS_MESSAGE_CLASS_PERSONAL,
    "informational": pb.MMS_MESSAGE_CLASS_INFORMATIONAL,
    "advertisement": pb.MMS_MESSAGE_CLASS_ADVERTISEMENT,
    "auto": pb.MMS_MESSAGE_CLASS_AUTO,
}
_MMS_PRIORITY = {
    "": pb.MMS_PRIORITY_UNSPECIFIED,
    "low": pb.MMS_PRIORITY_LOW,
    "normal": pb.MMS_PRIORITY_NORMAL,
    "high": pb.MMS_PRIORITY_HIGH,
}
TERMINAL_STATES = frozenset({"delivered", "failed", "expired", "rejected", "unknown", "suppressed"})


def new_client_ref() -> str:
    """A fresh idempotency key (``py-`` and a random UUID)."""
    return f"py-{uuid.uuid4().hex}"


@dataclass
class Message:
    """One rendered message to submit.

    ``client_ref`` is the idempotency key: the gateway remembers it (24 h by
    default) and answers a repeat with the original id, sending nothing
    again. Left empty, a random one is chosen when the message is submitted
    and kept for every resubmission of that call.

    The ``mms_*`` fields are the MM7 SubmitReq's own for this message (empty
    or ``None``: the MMSC's defaults): ``mms_service_code`` (one of the
    tenant's ``mms_service_codes``), ``mms_linked_id`` (an MO's
    ``linked_id``, to answer it), ``mms_message_class``, ``mms_priority``,
    ``mms_read_reply``, ``mms_distribution_indicator`` and
    ``mms_earliest_delivery_ms`` (Unix ms; 0: none).
    """

    to: str
    text: str = ""
    sender: str = ""
    client_ref: str = ""
    media: list[str] = field(default_factory=list)
    subject: str = ""
    channel: ChannelPreference = "auto"
    fallback: Fallback = "sms_with_link"
    campaign_id: str = ""
    validity_seconds: int = 0
    priority: Priority = "marketing"
    tags: list[str] = field(default_factory=list)
    mms_service_code: str = ""
    mms_linked_id: str = ""
    mms_message_class: MmsMessageClass = ""
    mms_priority: MmsPriority = ""
    mms_read_reply: Optional[bool] = None
    mms_distribution_indicator: Optional[bool] = None
    mms_earliest_delivery_ms: int = 0

    def to_proto(self) -> pb.SubmitMessage:
        """The wire form (choosing a ``client_ref`` when there is none)."""
        m = pb.SubmitMessage(
            client_ref=self.client_ref or new_client_ref(),
            to=self.to,
            text=self.text,
            media=self.media,
            subject=self.subject,
            channel=_CHANNEL[self.channel],
            fallback=_FALLBACK[self.fallback],
            campaign_id=self.campaign_id,
            validity_seconds=self.validity_seconds,
            priority=_PRIORITY[self.priority],
            tags=self.tags,
            mms_service_code=self.mms_service_code,
            mms_linked_id=self.mms_linked_id,
            mms_message_class=_MMS_CLASS[self.mms_message_class],
            mms_priority=_MMS_PRIORITY[self.mms_priority],
            mms_earliest_delivery_ms=self.mms_earliest_delivery_ms,
        )
        if self.mms_read_reply is not None:
            m.mms_read_reply = self.mms_read_reply
        if self.mms_distribution_indicator is not None:
            m.mms_distribution_indicator = self.mms_distribution_indicator
        setattr(m, "from", self.sender)  # `from` is a Python keyword
        return m


@dataclass(frozen=True)
class SubmitResult:
    """What the gateway said about one submitted message, in batch order.

    ``accepted``: the message is durable at the gateway and ``message_id``
    is its id. ``duplicate``: the ``client_ref`` was seen before and
    ``message_id`` is the original's (nothing is sent again). ``resent``:
    the client sent this message's batch again after a reconnect because
    the first answer was lost, so ``duplicate`` may just mean the first send
    had arrived. Rejected messages carry ``reason`` (the ``RejectReason``
    name) and a readable ``detail``.
    """

    client_ref: str
    message_id: Optional[int]
    reason: Optional[str]
    detail: str
    duplicate: bool
    resent: bool

    @property
    def accepted(self) -> bool:
        """True when the gateway holds the message (new or duplicate)."""
        return self.reason is None

    @property
    def status(self) -> Literal["accepted", "duplicate", "rejected"]:
        """``"accepted"``, ``"duplicate"`` or ``"rejected"``."""
        if self.reason is not None:
            return "rejected"
        return "duplicate" if self.duplicate else "accepted"

    @property
    def message_id_hex(self) -> str:
        """The id as the gateway prints it (16 hex digits), or ``""``."""
        return "" if self.message_id is None else f"{self.message_id:016x}"

    @classmethod
    def from_proto(cls, r: pb.SubmitResult, resent: bool) -> "SubmitResult":
        """From the wire form."""
        if r.reason == pb.REJECT_NONE:
            return cls(r.client_ref, r.message_id, None, r.detail, r.duplicate, resent)
        return cls(r.client_ref, None, pb.RejectReason.Name(r.reason), r.detail, r.duplicate, resent)


@dataclass(frozen=True)
class Media:
    """Stored media: put ``media_id`` in :attr:`Message.media`."""

    media_id: str
    size: int
    content_type: str


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


@dataclass(frozen=True)
class Delivery:
    """The state of one message changed (``DeliveryEvent``)."""

    message_id: int
    client_ref: str
    state: str
    reason: str
    error_code: int
    channel: str
    at_ms: int
    carrier: str
    segments: int
    campaign_id: str
    channel_reason: str

    @property
    def terminal(self) -> bool:
        """True for a final state (anything but ``"submitted"``)."""
        return self.state in TERMINAL_STATES

    def to_json(self) -> dict[str, Any]:
        """The fields ``sluice send --wait`` prints, in its format."""
        return {
            "message_id": f"{self.message_id:016x}",
            "client_ref": self.client_ref,
            "state": self.state,
            "reason": self.reason,
            "error_code": self.error_code,
            "carrier": self.carrier,
            "channel": self.channel,
            "segments": self.segments,
            "at_ms": self.at_ms,
        }


@dataclass(frozen=True)
class Inbound:
    """A message from a handset (MO) that is not a compliance keyword."""

    sender: str
    to: str
    text: str
    at_ms: int
    carrier: str


@dataclass(frozen=True)
class OptChange:
    """A recipient opted out (or back in)."""

    number: str
    scope: str
    opted_out: bool
    keyword: str
    at_ms: int


@dataclass(frozen=True)
class Event:
    """One event of a subscription. Acknowledge it with
    :meth:`Client.ack` once handled; until then the gateway sends it again
    (after a reconnect or a restart), so handle events idempotently by
    ``event_id``."""

    event_id: int
    kind: Literal["delivery", "inbound", "opt", "unknown"]
    delivery: Optional[Delivery] = None
    inbound: Optional[Inbound] = None
    opt: Optional[OptChange] = None

    @classmethod
    def from_proto(cls, e: pb.Event) -> "Event":
        """From the wire form."""
        which = e.WhichOneof("kind")
        if which == "delivery":
            d = e.delivery
            return cls(
                e.event_id,
                "delivery",
                delivery=Delivery(
                    message_id=d.message_id,
                    client_ref=d.client_ref,
                    state=_enum_name(pb.DeliveryState, d.state, "STATE_"),
                    reason=d.reason,
                    error_code=d.error_code,
                    channel={pb.CHANNEL_SMS_USED: "sms", pb.CHANNEL_MMS_USED: "mms"}.get(d.channel, ""),
                    at_ms=d.at_ms,
                    carrier=d.carrier,
                    segments=d.segments,
                    campaign_id=d.campaign_id,
                    channel_reason=d.channel_reason,
                ),
            )
        if which == "inbound":
            m = e.inbound
            return cls(e.event_id, "inbound", inbound=Inbound(getattr(m, "from"), m.to, m.text, m.at_ms, m.carrier))
        if which == "opt":
            o = e.opt
            return cls(e.event_id, "opt", opt=OptChange(o.number, o.scope, o.opted_out, o.keyword, o.at_ms))
        return cls(e.event_id, "unknown")
