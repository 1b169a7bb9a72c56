//! The Redis link: an auto-reconnecting connection for commands and
//! scripts, shared, and one more per stream follower for its blocking reads
//! ([`Link::reader`]: a connection blocked in `XREAD` serves nothing else,
//! so a read waiting for news must never sit in front of a claim or of
//! another follower's read); whether Redis answered last
//! (`sluice_cluster_redis_up`); and the key names.
//!
//! Keys are `<prefix>:{<tag>}:<name>`: the tag in braces is the Redis
//! Cluster hash tag, so every key a script touches hashes to one slot
//! (all opt-out keys share `{optouts}`, a tenant's claims share
//! `{claims:<tenant>}`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, RedisResult};

use super::TARGET;

/// How long a command may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest blocking stream read.
pub const BLOCK: Duration = Duration::from_millis(500);

/// Connections to Redis (see the module doc). Cloning is cheap.
#[derive(Clone)]
pub struct Link {
    client: redis::Client,
    commands: ConnectionManager,
    prefix: Arc<str>,
    up: Arc<AtomicBool>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Link")
            .field("prefix", &self.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Connections to `url` (made lazily, remade when lost).
    ///
    /// # Errors
    /// The URL cannot be read (the error does not repeat it).
    pub fn open(url: &str, prefix: &str) -> anyhow::Result<Link> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("cluster.redis_url is invalid ({:?})", e.kind()))?;
        let commands = connection(&client, RESPONSE_TIMEOUT)?;
        // Down until Redis first answers: an alert on `== 0` fires for a
        // node that never reached it.
        metrics::gauge!("sluice_cluster_redis_up").set(0.0);
        Ok(Link {
            client,
            commands,
            prefix: prefix.into(),
            up: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A connection of its own for one follower's blocking reads.
    ///
    /// # Errors
    /// The connection could not be set up.
    pub fn reader(&self) -> anyhow::Result<Reader> {
        Ok(Reader {
            link: self.clone(),
            conn: connection(&self.client, BLOCK + RESPONSE_TIMEOUT)?,
        })
    }

    /// `<prefix>:{<tag>}:<name>`.
    pub fn key(&self, tag: &str, name: &str) -> String {
        format!("{}:{{{tag}}}:{name}", self.prefix)
    }

    /// Whether Redis answered the last command.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn note<T>(&self, r: RedisResult<T>) -> RedisResult<T> {
        let ok = match &r {
            Ok(_) => true,
            // An error reply (a script's, a wrong type) still means Redis
            // is there.
            Err(e) => {
                !(e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal())
            }
        };
        if self.up.swap(ok, Ordering::Relaxed) != ok {
            metrics::gauge!("sluice_cluster_redis_up").set(if ok { 1.0 } else { 0.0 });
            if ok {
                tracing::info!(target: TARGET, "redis reachable");
            } else if let Err(e) = &r {
                tracing::warn!(target: TARGET, error = %crate::model::LogSafe::display(e), "redis unreachable");
            }
        }
        r
    }

    /// Runs a command and reads its answer as `T`.
    ///
    /// # Errors
    /// Redis could not be reached, answered an error, or not as `T`.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let mut c = self.commands.clone();
        let r = cmd.query_async(&mut c).await;
        self.note(r)
    }

    /// Runs a command, ignoring its answer.
    ///
    /// # Errors
    /// See [`Link::query`].
    pub async fn run(&self, cmd: &Cmd) -> RedisResult<()> {
        self.query::<redis::Value>(cmd).await.map(|_| ())
    }

    /// Runs a pipeline.
    ///
    /// # Errors
    /// See [`Link::query`].
    pub async fn pipe<T: FromRedisValue>(&self, p: &redis::Pipeline) -> RedisResult<T> {
        let mut c = self.commands.clone();
        let r = p.query_async(&mut c).await;
        self.note(r)
    }
}

fn connection(client: &redis::Client, timeout: Duration) -> anyhow::Result<ConnectionManager> {
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(timeout))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client.clone(), cfg)
        .map_err(|e| anyhow::anyhow!("cluster: {:?}", e.kind()))
}

/// One follower's connection for blocking reads ([`Link::reader`]).
#[derive(Clone)]
pub struct Reader {
    link: Link,
    conn: ConnectionManager,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    /// Runs a blocking read (`XREAD BLOCK …`).
    ///
    /// # Errors
    /// See [`Link::query`].
    pub async fn read<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let mut c = self.conn.clone();
        let r = cmd.query_async(&mut c).await;
        self.link.note(r)
    }
}

/// Waits before trying Redis again after a failure: 50 ms doubling to 2 s.
#[derive(Debug)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(50))
    }
}

impl Backoff {
    /// Sleeps, then doubles the next wait.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
    }

    /// After a success: the next failure waits 50 ms again.
    pub fn reset(&mut self) {
        self.0 = Duration::from_millis(50);
    }
}
