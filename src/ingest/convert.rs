//! The framed protocol's messages to and from the domain's: what a session
//! hands the [`super::Backend`] and sends back. The generated `pb` types
//! stop here.

use super::pb;
use crate::model::submit::{MediaChunk, MediaStored, RejectReason, Submission, SubmitResult};
use crate::model::{ChannelPref, FallbackPolicy, MmsMessageClass, MmsPriority, Priority};

/// A submitted message as the domain's [`Submission`] (fields moved, not
/// copied; unknown enum values take their defaults, as before).
pub fn submission(m: pb::SubmitMessage) -> Submission {
    Submission {
        channel: match pb::ChannelPreference::try_from(m.channel) {
            Ok(pb::ChannelPreference::ChannelSms) => ChannelPref::Sms,
            Ok(pb::ChannelPreference::ChannelMms) => ChannelPref::Mms,
            _ => ChannelPref::Auto,
        },
        fallback: match pb::FallbackPolicy::try_from(m.fallback) {
            Ok(pb::FallbackPolicy::FallbackSmsTextOnly) => FallbackPolicy::SmsTextOnly,
            Ok(pb::FallbackPolicy::FallbackNone) => FallbackPolicy::None,
            _ => FallbackPolicy::SmsWithLink,
        },
        priority: if m.priority == pb::PriorityClass::PriorityTransactional as i32 {
            Priority::Transactional
        } else {
            Priority::Marketing
        },
        client_ref: m.client_ref,
        to: m.to,
        from: m.from,
        text: m.text,
        media: m.media,
        subject: m.subject,
        campaign_id: m.campaign_id,
        validity_seconds: m.validity_seconds,
        tags: m.tags,
        mms_message_class: match pb::MmsMessageClass::try_from(m.mms_message_class) {
            Ok(pb::MmsMessageClass::Personal) => Some(MmsMessageClass::Personal),
            Ok(pb::MmsMessageClass::Informational) => Some(MmsMessageClass::Informational),
            Ok(pb::MmsMessageClass::Advertisement) => Some(MmsMessageClass::Advertisement),
            Ok(pb::MmsMessageClass::Auto) => Some(MmsMessageClass::Auto),
            _ => None,
        },
        mms_priority: match pb::MmsPriority::try_from(m.mms_priority) {
            Ok(pb::MmsPriority::Low) => Some(MmsPriority::Low),
            Ok(pb::MmsPriority::Normal) => Some(MmsPriority::Normal),
            Ok(pb::MmsPriority::High) => Some(MmsPriority::High),
            _ => None,
        },
        mms_read_reply: m.mms_read_reply,
        mms_distribution_indicator: m.mms_distribution_indicator,
        mms_earliest_delivery_ms: m.mms_earliest_delivery_ms,
        track_links: m.track_links,
        mms_service_code: m.mms_service_code,
        mms_linked_id: m.mms_linked_id,
    }
}

/// The wire code of a rejection reason.
pub fn reject_reason(r: RejectReason) -> pb::RejectReason {
    match r {
        RejectReason::InvalidNumber => pb::RejectReason::InvalidNumber,
        RejectReason::InvalidSender => pb::RejectReason::InvalidSender,
        RejectReason::TextTooLong => pb::RejectReason::TextTooLong,
        RejectReason::EmptyMessage => pb::RejectReason::EmptyMessage,
        RejectReason::InvalidField => pb::RejectReason::InvalidField,
        RejectReason::Suppressed => pb::RejectReason::Suppressed,
        RejectReason::UnknownMedia => pb::RejectReason::UnknownMedia,
        RejectReason::NoRoute => pb::RejectReason::NoRoute,
        RejectReason::DuplicateInBatch => pb::RejectReason::DuplicateInBatch,
        RejectReason::Unavailable => pb::RejectReason::Unavailable,
        RejectReason::SenderNotAllowed => pb::RejectReason::SenderNotAllowed,
    }
}

/// One message's result on the wire.
pub fn submit_result(r: SubmitResult) -> pb::SubmitResult {
    match r.outcome {
        Ok(a) => pb::SubmitResult {
            client_ref: r.client_ref,
            message_id: a.id.0,
            reason: pb::RejectReason::RejectNone as i32,
            detail: String::new(),
            duplicate: a.duplicate,
        },
        Err(rej) => pb::SubmitResult {
            client_ref: r.client_ref,
            message_id: 0,
            reason: reject_reason(rej.reason) as i32,
            detail: rej.detail,
            duplicate: false,
        },
    }
}

/// An upload as the domain's [`MediaChunk`].
pub fn media_chunk(m: pb::PutMedia) -> MediaChunk {
    MediaChunk {
        upload_id: m.upload_id,
        content_type: m.content_type,
        total_size: m.total_size,
        offset: m.offset,
        data: m.data,
        last: m.last,
    }
}

/// Stored media on the wire.
pub fn media_ok(m: MediaStored) -> pb::MediaOk {
    pb::MediaOk {
        media_id: m.media_id,
        size: m.size,
        content_type: m.content_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MessageId;
    use crate::model::submit::{Accepted, Rejection};

    #[test]
    fn every_reject_reason_keeps_its_wire_name() {
        for r in [
            RejectReason::InvalidNumber,
            RejectReason::InvalidSender,
            RejectReason::TextTooLong,
            RejectReason::EmptyMessage,
            RejectReason::InvalidField,
            RejectReason::Suppressed,
            RejectReason::UnknownMedia,
            RejectReason::NoRoute,
            RejectReason::DuplicateInBatch,
            RejectReason::Unavailable,
            RejectReason::SenderNotAllowed,
        ] {
            assert_eq!(reject_reason(r).as_str_name(), r.as_str());
        }
    }

    #[test]
    fn enums_and_results_cross_the_edge() {
        let s = submission(pb::SubmitMessage {
            client_ref: "r".into(),
            channel: pb::ChannelPreference::ChannelMms as i32,
            fallback: pb::FallbackPolicy::FallbackNone as i32,
            priority: pb::PriorityClass::PriorityTransactional as i32,
            validity_seconds: 60,
            ..Default::default()
        });
        assert_eq!(
            (s.channel, s.fallback, s.priority, s.validity_seconds),
            (
                ChannelPref::Mms,
                FallbackPolicy::None,
                Priority::Transactional,
                60
            )
        );
        let odd = submission(pb::SubmitMessage {
            channel: 99,
            fallback: 99,
            priority: 99,
            ..Default::default()
        });
        assert_eq!(
            (odd.channel, odd.fallback, odd.priority),
            (
                ChannelPref::Auto,
                FallbackPolicy::SmsWithLink,
                Priority::Marketing
            )
        );
        let ok = submit_result(SubmitResult {
            client_ref: "a".into(),
            outcome: Ok(Accepted {
                id: MessageId(9),
                duplicate: true,
            }),
        });
        assert_eq!((ok.message_id, ok.reason, ok.duplicate), (9, 0, true));
        let no = submit_result(SubmitResult {
            client_ref: "b".into(),
            outcome: Err(Rejection {
                reason: RejectReason::NoRoute,
                detail: "none".into(),
            }),
        });
        assert_eq!(
            (no.message_id, no.reason, no.detail.as_str()),
            (0, pb::RejectReason::NoRoute as i32, "none")
        );
    }
}
