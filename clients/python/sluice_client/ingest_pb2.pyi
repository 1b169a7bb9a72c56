from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChannelPreference(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_AUTO: _ClassVar[ChannelPreference]
    CHANNEL_SMS: _ClassVar[ChannelPreference]
    CHANNEL_MMS: _ClassVar[ChannelPreference]

class FallbackPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FALLBACK_SMS_WITH_LINK: _ClassVar[FallbackPolicy]
    FALLBACK_SMS_TEXT_ONLY: _ClassVar[FallbackPolicy]
    FALLBACK_NONE: _ClassVar[FallbackPolicy]

class PriorityClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_MARKETING: _ClassVar[PriorityClass]
    PRIORITY_TRANSACTIONAL: _ClassVar[PriorityClass]

class MmsMessageClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MMS_MESSAGE_CLASS_UNSPECIFIED: _ClassVar[MmsMessageClass]
    MMS_MESSAGE_CLASS_PERSONAL: _ClassVar[MmsMessageClass]
    MMS_MESSAGE_CLASS_INFORMATIONAL: _ClassVar[MmsMessageClass]
    MMS_MESSAGE_CLASS_ADVERTISEMENT: _ClassVar[MmsMessageClass]
    MMS_MESSAGE_CLASS_AUTO: _ClassVar[MmsMessageClass]

class MmsPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MMS_PRIORITY_UNSPECIFIED: _ClassVar[MmsPriority]
    MMS_PRIORITY_LOW: _ClassVar[MmsPriority]
    MMS_PRIORITY_NORMAL: _ClassVar[MmsPriority]
    MMS_PRIORITY_HIGH: _ClassVar[MmsPriority]

class RejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECT_NONE: _ClassVar[RejectReason]
    INVALID_NUMBER: _ClassVar[RejectReason]
    INVALID_SENDER: _ClassVar[RejectReason]
    TEXT_TOO_LONG: _ClassVar[RejectReason]
    EMPTY_MESSAGE: _ClassVar[RejectReason]
    INVALID_FIELD: _ClassVar[RejectReason]
    SUPPRESSED: _ClassVar[RejectReason]
    UNKNOWN_MEDIA: _ClassVar[RejectReason]
    NO_ROUTE: _ClassVar[RejectReason]
    DUPLICATE_IN_BATCH: _ClassVar[RejectReason]
    UNAVAILABLE: _ClassVar[RejectReason]
    SENDER_NOT_ALLOWED: _ClassVar[RejectReason]

class SubscribeScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCOPE_TENANT: _ClassVar[SubscribeScope]
    SCOPE_CONNECTION: _ClassVar[SubscribeScope]

class DeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_UNSPECIFIED: _ClassVar[DeliveryState]
    STATE_DELIVERED: _ClassVar[DeliveryState]
    STATE_FAILED: _ClassVar[DeliveryState]
    STATE_EXPIRED: _ClassVar[DeliveryState]
    STATE_REJECTED: _ClassVar[DeliveryState]
    STATE_UNKNOWN: _ClassVar[DeliveryState]
    STATE_SUPPRESSED: _ClassVar[DeliveryState]
    STATE_SUBMITTED: _ClassVar[DeliveryState]

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_SMS_USED: _ClassVar[Channel]
    CHANNEL_MMS_USED: _ClassVar[Channel]

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_UNSPECIFIED: _ClassVar[ErrorCode]
    BAD_FRAME: _ClassVar[ErrorCode]
    UNSUPPORTED_VERSION: _ClassVar[ErrorCode]
    AUTH_FAILED: _ClassVar[ErrorCode]
    NOT_AUTHENTICATED: _ClassVar[ErrorCode]
    BATCH_TOO_LARGE: _ClassVar[ErrorCode]
    NO_CREDIT: _ClassVar[ErrorCode]
    INTERNAL: _ClassVar[ErrorCode]
    SHUTTING_DOWN: _ClassVar[ErrorCode]
    UNKNOWN_FRAME: _ClassVar[ErrorCode]
    PROTOCOL_VIOLATION: _ClassVar[ErrorCode]
    MEDIA_REJECTED: _ClassVar[ErrorCode]
    BUSY: _ClassVar[ErrorCode]
CHANNEL_AUTO: ChannelPreference
CHANNEL_SMS: ChannelPreference
CHANNEL_MMS: ChannelPreference
FALLBACK_SMS_WITH_LINK: FallbackPolicy
FALLBACK_SMS_TEXT_ONLY: FallbackPolicy
FALLBACK_NONE: FallbackPolicy
PRIORITY_MARKETING: PriorityClass
PRIORITY_TRANSACTIONAL: PriorityClass
MMS_MESSAGE_CLASS_UNSPECIFIED: MmsMessageClass
MMS_MESSAGE_CLASS_PERSONAL: MmsMessageClass
MMS_MESSAGE_CLASS_INFORMATIONAL: MmsMessageClass
MMS_MESSAGE_CLASS_ADVERTISEMENT: MmsMessageClass
MMS_MESSAGE_CLASS_AUTO: MmsMessageClass
MMS_PRIORITY_UNSPECIFIED: MmsPriority
MMS_PRIORITY_LOW: MmsPriority
MMS_PRIORITY_NORMAL: MmsPriority
MMS_PRIORITY_HIGH: MmsPriority
REJECT_NONE: RejectReason
INVALID_NUMBER: RejectReason
INVALID_SENDER: RejectReason
TEXT_TOO_LONG: RejectReason
EMPTY_MESSAGE: RejectReason
INVALID_FIELD: RejectReason
SUPPRESSED: RejectReason
UNKNOWN_MEDIA: RejectReason
NO_ROUTE: RejectReason
DUPLICATE_IN_BATCH: RejectReason
UNAVAILABLE: RejectReason
SENDER_NOT_ALLOWED: RejectReason
SCOPE_TENANT: SubscribeScope
SCOPE_CONNECTION: SubscribeScope
STATE_UNSPECIFIED: DeliveryState
STATE_DELIVERED: DeliveryState
STATE_FAILED: DeliveryState
STATE_EXPIRED: DeliveryState
STATE_REJECTED: DeliveryState
STATE_UNKNOWN: DeliveryState
STATE_SUPPRESSED: DeliveryState
STATE_SUBMITTED: DeliveryState
CHANNEL_UNSPECIFIED: Channel
CHANNEL_SMS_USED: Channel
CHANNEL_MMS_USED: Channel
ERROR_UNSPECIFIED: ErrorCode
BAD_FRAME: ErrorCode
UNSUPPORTED_VERSION: ErrorCode
AUTH_FAILED: ErrorCode
NOT_AUTHENTICATED: ErrorCode
BATCH_TOO_LARGE: ErrorCode
NO_CREDIT: ErrorCode
INTERNAL: ErrorCode
SHUTTING_DOWN: ErrorCode
UNKNOWN_FRAME: ErrorCode
PROTOCOL_VIOLATION: ErrorCode
MEDIA_REJECTED: ErrorCode
BUSY: ErrorCode

class Frame(_message.Message):
    __slots__ = ("request_id", "hello", "hello_ok", "submit_batch", "batch_ack", "subscribe", "subscribe_ok", "event_batch", "event_ack", "ping", "pong", "error", "go_away", "credit_grant", "put_media", "media_ok")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HELLO_OK_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_BATCH_FIELD_NUMBER: _ClassVar[int]
    BATCH_ACK_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_OK_FIELD_NUMBER: _ClassVar[int]
    EVENT_BATCH_FIELD_NUMBER: _ClassVar[int]
    EVENT_ACK_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GO_AWAY_FIELD_NUMBER: _ClassVar[int]
    CREDIT_GRANT_FIELD_NUMBER: _ClassVar[int]
    PUT_MEDIA_FIELD_NUMBER: _ClassVar[int]
    MEDIA_OK_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    hello: Hello
    hello_ok: HelloOk
    submit_batch: SubmitBatch
    batch_ack: BatchAck
    subscribe: Subscribe
    subscribe_ok: SubscribeOk
    event_batch: EventBatch
    event_ack: EventAck
    ping: Ping
    pong: Pong
    error: Error
    go_away: GoAway
    credit_grant: CreditGrant
    put_media: PutMedia
    media_ok: MediaOk
    def __init__(self, request_id: _Optional[int] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., hello_ok: _Optional[_Union[HelloOk, _Mapping]] = ..., submit_batch: _Optional[_Union[SubmitBatch, _Mapping]] = ..., batch_ack: _Optional[_Union[BatchAck, _Mapping]] = ..., subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., subscribe_ok: _Optional[_Union[SubscribeOk, _Mapping]] = ..., event_batch: _Optional[_Union[EventBatch, _Mapping]] = ..., event_ack: _Optional[_Union[EventAck, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., go_away: _Optional[_Union[GoAway, _Mapping]] = ..., credit_grant: _Optional[_Union[CreditGrant, _Mapping]] = ..., put_media: _Optional[_Union[PutMedia, _Mapping]] = ..., media_ok: _Optional[_Union[MediaOk, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("protocol_version", "tenant", "token", "client_name")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    tenant: str
    token: str
    client_name: str
    def __init__(self, protocol_version: _Optional[int] = ..., tenant: _Optional[str] = ..., token: _Optional[str] = ..., client_name: _Optional[str] = ...) -> None: ...

class HelloOk(_message.Message):
    __slots__ = ("protocol_version", "max_frame_bytes", "max_batch_messages", "credits", "node_id")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    max_frame_bytes: int
    max_batch_messages: int
    credits: int
    node_id: str
    def __init__(self, protocol_version: _Optional[int] = ..., max_frame_bytes: _Optional[int] = ..., max_batch_messages: _Optional[int] = ..., credits: _Optional[int] = ..., node_id: _Optional[str] = ...) -> None: ...

class SubmitBatch(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[SubmitMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[SubmitMessage, _Mapping]]] = ...) -> None: ...

class SubmitMessage(_message.Message):
    __slots__ = ("client_ref", "to", "text", "media", "subject", "channel", "fallback", "campaign_id", "validity_seconds", "priority", "tags", "mms_service_code", "mms_linked_id", "mms_message_class", "mms_priority", "mms_read_reply", "mms_distribution_indicator", "mms_earliest_delivery_ms", "track_links")
    CLIENT_REF_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    MMS_SERVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    MMS_LINKED_ID_FIELD_NUMBER: _ClassVar[int]
    MMS_MESSAGE_CLASS_FIELD_NUMBER: _ClassVar[int]
    MMS_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MMS_READ_REPLY_FIELD_NUMBER: _ClassVar[int]
    MMS_DISTRIBUTION_INDICATOR_FIELD_NUMBER: _ClassVar[int]
    MMS_EARLIEST_DELIVERY_MS_FIELD_NUMBER: _ClassVar[int]
    TRACK_LINKS_FIELD_NUMBER: _ClassVar[int]
    client_ref: str
    to: str
    text: str
    media: _containers.RepeatedScalarFieldContainer[str]
    subject: str
    channel: ChannelPreference
    fallback: FallbackPolicy
    campaign_id: str
    validity_seconds: int
    priority: PriorityClass
    tags: _containers.RepeatedScalarFieldContainer[str]
    mms_service_code: str
    mms_linked_id: str
    mms_message_class: MmsMessageClass
    mms_priority: MmsPriority
    mms_read_reply: bool
    mms_distribution_indicator: bool
    mms_earliest_delivery_ms: int
    track_links: bool
    def __init__(self, client_ref: _Optional[str] = ..., to: _Optional[str] = ..., text: _Optional[str] = ..., media: _Optional[_Iterable[str]] = ..., subject: _Optional[str] = ..., channel: _Optional[_Union[ChannelPreference, str]] = ..., fallback: _Optional[_Union[FallbackPolicy, str]] = ..., campaign_id: _Optional[str] = ..., validity_seconds: _Optional[int] = ..., priority: _Optional[_Union[PriorityClass, str]] = ..., tags: _Optional[_Iterable[str]] = ..., mms_service_code: _Optional[str] = ..., mms_linked_id: _Optional[str] = ..., mms_message_class: _Optional[_Union[MmsMessageClass, str]] = ..., mms_priority: _Optional[_Union[MmsPriority, str]] = ..., mms_read_reply: _Optional[bool] = ..., mms_distribution_indicator: _Optional[bool] = ..., mms_earliest_delivery_ms: _Optional[int] = ..., track_links: _Optional[bool] = ..., **kwargs) -> None: ...

class PutMedia(_message.Message):
    __slots__ = ("upload_id", "content_type", "total_size", "offset", "data", "last")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    content_type: str
    total_size: int
    offset: int
    data: bytes
    last: bool
    def __init__(self, upload_id: _Optional[str] = ..., content_type: _Optional[str] = ..., total_size: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class MediaOk(_message.Message):
    __slots__ = ("media_id", "size", "content_type")
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    size: int
    content_type: str
    def __init__(self, media_id: _Optional[str] = ..., size: _Optional[int] = ..., content_type: _Optional[str] = ...) -> None: ...

class SubmitResult(_message.Message):
    __slots__ = ("client_ref", "message_id", "reason", "detail", "duplicate")
    CLIENT_REF_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    client_ref: str
    message_id: int
    reason: RejectReason
    detail: str
    duplicate: bool
    def __init__(self, client_ref: _Optional[str] = ..., message_id: _Optional[int] = ..., reason: _Optional[_Union[RejectReason, str]] = ..., detail: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class BatchAck(_message.Message):
    __slots__ = ("results", "credits")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SubmitResult]
    credits: int
    def __init__(self, results: _Optional[_Iterable[_Union[SubmitResult, _Mapping]]] = ..., credits: _Optional[int] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("max_in_flight", "scope")
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    max_in_flight: int
    scope: SubscribeScope
    def __init__(self, max_in_flight: _Optional[int] = ..., scope: _Optional[_Union[SubscribeScope, str]] = ...) -> None: ...

class SubscribeOk(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeliveryEvent(_message.Message):
    __slots__ = ("message_id", "client_ref", "state", "reason", "error_code", "channel", "at_ms", "carrier", "segments", "campaign_id", "channel_reason")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REF_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_REASON_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    client_ref: str
    state: DeliveryState
    reason: str
    error_code: int
    channel: Channel
    at_ms: int
    carrier: str
    segments: int
    campaign_id: str
    channel_reason: str
    def __init__(self, message_id: _Optional[int] = ..., client_ref: _Optional[str] = ..., state: _Optional[_Union[DeliveryState, str]] = ..., reason: _Optional[str] = ..., error_code: _Optional[int] = ..., channel: _Optional[_Union[Channel, str]] = ..., at_ms: _Optional[int] = ..., carrier: _Optional[str] = ..., segments: _Optional[int] = ..., campaign_id: _Optional[str] = ..., channel_reason: _Optional[str] = ...) -> None: ...

class InboundMessage(_message.Message):
    __slots__ = ("to", "text", "at_ms", "carrier", "linked_id")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    LINKED_ID_FIELD_NUMBER: _ClassVar[int]
    to: str
    text: str
    at_ms: int
    carrier: str
    linked_id: str
    def __init__(self, to: _Optional[str] = ..., text: _Optional[str] = ..., at_ms: _Optional[int] = ..., carrier: _Optional[str] = ..., linked_id: _Optional[str] = ..., **kwargs) -> None: ...

class OptEvent(_message.Message):
    __slots__ = ("number", "scope", "opted_out", "keyword", "at_ms", "campaign_id")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    OPTED_OUT_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    number: str
    scope: str
    opted_out: bool
    keyword: str
    at_ms: int
    campaign_id: str
    def __init__(self, number: _Optional[str] = ..., scope: _Optional[str] = ..., opted_out: _Optional[bool] = ..., keyword: _Optional[str] = ..., at_ms: _Optional[int] = ..., campaign_id: _Optional[str] = ...) -> None: ...

class LinkClick(_message.Message):
    __slots__ = ("message_id", "client_ref", "campaign_id", "number", "link_index", "url", "first", "at_ms", "user_agent", "ip_class")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REF_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    LINK_INDEX_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    IP_CLASS_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    client_ref: str
    campaign_id: str
    number: str
    link_index: int
    url: str
    first: bool
    at_ms: int
    user_agent: str
    ip_class: str
    def __init__(self, message_id: _Optional[int] = ..., client_ref: _Optional[str] = ..., campaign_id: _Optional[str] = ..., number: _Optional[str] = ..., link_index: _Optional[int] = ..., url: _Optional[str] = ..., first: _Optional[bool] = ..., at_ms: _Optional[int] = ..., user_agent: _Optional[str] = ..., ip_class: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "delivery", "inbound", "opt", "click")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    INBOUND_FIELD_NUMBER: _ClassVar[int]
    OPT_FIELD_NUMBER: _ClassVar[int]
    CLICK_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    delivery: DeliveryEvent
    inbound: InboundMessage
    opt: OptEvent
    click: LinkClick
    def __init__(self, event_id: _Optional[int] = ..., delivery: _Optional[_Union[DeliveryEvent, _Mapping]] = ..., inbound: _Optional[_Union[InboundMessage, _Mapping]] = ..., opt: _Optional[_Union[OptEvent, _Mapping]] = ..., click: _Optional[_Union[LinkClick, _Mapping]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class EventAck(_message.Message):
    __slots__ = ("event_ids",)
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    event_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, event_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: int
    def __init__(self, nonce: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: int
    def __init__(self, nonce: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class GoAway(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class CreditGrant(_message.Message):
    __slots__ = ("credits",)
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    credits: int
    def __init__(self, credits: _Optional[int] = ...) -> None: ...
