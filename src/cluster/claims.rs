//! Idempotency across nodes: a `(tenant, client_ref)` is claimed in Redis
//! (`SET NX` with the dedupe window as its lifetime) before its message is
//! journaled, so a batch retried on another node gets the original ids and
//! sends nothing twice.
//!
//! One script call per batch claims every key of the batch (a tenant's
//! keys share the hash tag `{claims:<tenant>}`, so the call touches one
//! slot): well under one Redis operation per message. A key already taken
//! answers with the id it was taken for. Without Redis, a batch is
//! answered `unavailable` (retry): never admitted unclaimed, which could
//! send a retry twice.

use super::link::Link;
use crate::model::MessageId;

/// Claims every key; answers `""` for a key taken now, else the id the
/// key was taken for. KEYS: the keys. ARGV: lifetime ms, then one id per key.
const CLAIM: &str = r"
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('SET', k, ARGV[i + 1], 'NX', 'PX', ARGV[1]) then
    out[i] = ''
  else
    out[i] = redis.call('GET', k) or ''
  end
end
return out
";

/// Gives back keys still held for the given ids (a batch whose journal
/// write failed). KEYS: the keys. ARGV: one id per key.
const RELEASE: &str = r"
local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[i] then
    redis.call('DEL', k)
    n = n + 1
  end
end
return n
";

/// `(tenant, client_ref)` claims (see the module doc).
#[derive(Debug, Clone)]
pub struct Claims {
    link: Link,
    window_ms: u64,
}

impl Claims {
    /// Claims held for `window_ms`.
    pub fn new(link: Link, window_ms: u64) -> Claims {
        Claims {
            link,
            window_ms: window_ms.max(1),
        }
    }

    fn key(&self, tenant: &str, client_ref: &str) -> String {
        self.link.key(&format!("claims:{tenant}"), client_ref)
    }

    /// Claims each `(client_ref, id)` of one tenant's batch: `None` where
    /// the key is now this message's, `Some(original)` where another
    /// message had it.
    ///
    /// # Errors
    /// Redis could not be reached: nothing is known to be claimed.
    pub async fn claim(
        &self,
        tenant: &str,
        keys: &[(&str, MessageId)],
    ) -> anyhow::Result<Vec<Option<MessageId>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CLAIM).arg(keys.len());
        for (r, _) in keys {
            cmd.arg(self.key(tenant, r));
        }
        cmd.arg(self.window_ms);
        for (_, id) in keys {
            cmd.arg(id.0);
        }
        let answers: Vec<String> = self.link.query(&cmd).await?;
        if answers.len() != keys.len() {
            anyhow::bail!(
                "claim script answered {} for {} keys",
                answers.len(),
                keys.len()
            );
        }
        metrics::counter!("sluice_cluster_claim_calls_total").increment(1);
        Ok(answers
            .into_iter()
            .map(|a| {
                if a.is_empty() {
                    None
                } else {
                    // An unreadable value is treated as taken by an
                    // unknown message: refusing to send is the safe side.
                    Some(MessageId(a.parse().unwrap_or(0)))
                }
            })
            .collect())
    }

    /// Gives back the keys of messages that were never admitted.
    pub async fn release(&self, tenant: &str, keys: &[(&str, MessageId)]) {
        if keys.is_empty() {
            return;
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RELEASE).arg(keys.len());
        for (r, _) in keys {
            cmd.arg(self.key(tenant, r));
        }
        for (_, id) in keys {
            cmd.arg(id.0.to_string());
        }
        if let Err(e) = self.link.run(&cmd).await {
            tracing::warn!(target: super::TARGET, error = %crate::model::LogSafe::display(&e),
                "claims of a refused batch not released; they lapse after the dedupe window");
        }
    }
}
