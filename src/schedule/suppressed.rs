//! The opt-out check at dispatch and again right before a part or an MM7
//! request is written: a message queued before its recipient opted out
//! ends `suppressed` instead of going out. Compliance auto-replies pass
//! (they confirm that very opt-out, once).

use std::sync::Arc;

use super::DispatchCheck;
use crate::carrier::LastCheck;
use crate::compliance::Compliance;
use crate::model::{DeliveryState, Message};

/// [`LastCheck`] over the opt-outs.
#[derive(Debug)]
pub struct SuppressionCheck(Arc<Compliance>);

impl SuppressionCheck {
    /// The check over `compliance`, as dispatchers and carriers take it.
    pub fn over(compliance: Arc<Compliance>) -> DispatchCheck {
        Arc::new(SuppressionCheck(compliance))
    }
}

impl LastCheck for SuppressionCheck {
    fn epoch(&self) -> u64 {
        self.0.epoch()
    }

    fn check(&self, m: &Message) -> Option<(DeliveryState, Arc<str>)> {
        if m.auto_reply {
            return None;
        }
        self.0.check(&m.tenant, &m.from, m.to).map(|scope| {
            (
                DeliveryState::Suppressed,
                format!("recipient opted out ({scope}) while queued").into(),
            )
        })
    }
}
