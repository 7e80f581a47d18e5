//! Request rate limits (`rate_limit`): a fixed window per caller (identity, else client
//! address) for the default limit and for each configured route pattern. Counters live in
//! this process, or in Redis (`rate_limit.storage_uri`) so several instances share them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use gateway_workspace::config::RateLimitConfig;
use gateway_workspace::rate::{Rate, parse_rate};

/// Most counters kept in memory before old windows are swept.
const MAX_COUNTERS: usize = 100_000;

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; retry after this many seconds.
    Limited {
        retry_after: u64,
        limit: u32,
    },
}

enum Counters {
    Memory(Mutex<HashMap<String, (u64, u64)>>),
    Redis(redis::aio::ConnectionManager),
}

/// The configured limits and where their counters live.
pub struct RateLimiter {
    default: Rate,
    /// `(pattern, rate)`: `*` in a pattern matches one path segment.
    routes: Vec<(String, Rate)>,
    pub trust_forwarded_for: bool,
    counters: Counters,
}

#[derive(Debug, thiserror::Error)]
#[error("rate_limit: {0}")]
pub struct RateLimitError(pub String);

/// `INCR` the window's counter, setting its expiry on first use; returns the count.
const INCREMENT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Whether `path` matches `pattern` segment by segment (`*` = any one segment).
fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.trim_end_matches('/').split('/');
    let mut have = path.trim_end_matches('/').split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), Some(h)) if w == "*" || w == h => {}
            _ => return false,
        }
    }
}

impl RateLimiter {
    /// The limiter `config` describes; `None` when rate limiting is off.
    pub async fn from_config(config: &RateLimitConfig) -> Result<Option<Self>, RateLimitError> {
        if !config.enabled {
            return Ok(None);
        }
        let default = parse_rate(&config.default_limit).map_err(RateLimitError)?;
        let routes = config
            .routes
            .iter()
            .map(|(pattern, rate)| Ok((pattern.clone(), parse_rate(rate).map_err(RateLimitError)?)))
            .collect::<Result<Vec<_>, RateLimitError>>()?;
        let counters = match config.storage_uri.as_deref().filter(|u| !u.is_empty()) {
            None | Some("memory://") => Counters::Memory(Mutex::new(HashMap::new())),
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                let manager = crate::queue::connect_redis(url)
                    .await
                    .map_err(RateLimitError)?;
                Counters::Redis(manager)
            }
            Some(other) => {
                return Err(RateLimitError(format!(
                    "storage_uri '{other}' is not supported (use redis://... or leave it unset)"
                )));
            }
        };
        Ok(Some(Self {
            default,
            routes,
            trust_forwarded_for: config.trust_forwarded_for,
            counters,
        }))
    }

    /// Counts a request of `caller` to `path` against the default limit and the first
    /// matching route limit.
    pub async fn check(&self, caller: &str, path: &str) -> Verdict {
        let mut buckets = vec![("*".to_string(), self.default)];
        if let Some((pattern, rate)) = self.routes.iter().find(|(p, _)| matches(p, path)) {
            buckets.push((pattern.clone(), *rate));
        }
        let mut worst = Verdict::Allowed;
        for (bucket, rate) in buckets {
            let verdict = self.count(&format!("{bucket}|{caller}"), rate).await;
            if let Verdict::Limited { retry_after, .. } = verdict {
                let longer = match worst {
                    Verdict::Limited { retry_after: w, .. } => retry_after > w,
                    Verdict::Allowed => true,
                };
                if longer {
                    worst = verdict;
                }
            }
        }
        worst
    }

    async fn count(&self, key: &str, rate: Rate) -> Verdict {
        let period = (rate.period.as_millis() as u64).max(1);
        let now = now_ms();
        let window = now / period;
        let retry_after = (period - now % period).div_ceil(1000).max(1);
        let count = match &self.counters {
            Counters::Memory(counters) => {
                let mut counters = counters.lock().unwrap_or_else(|p| p.into_inner());
                if counters.len() > MAX_COUNTERS {
                    counters.retain(|_, (w, _)| *w >= window);
                }
                let entry = counters.entry(key.to_string()).or_insert((window, 0));
                if entry.0 != window {
                    *entry = (window, 0);
                }
                entry.1 += 1;
                entry.1
            }
            Counters::Redis(manager) => {
                let mut connection = manager.clone();
                let result: Result<u64, _> = redis::Script::new(INCREMENT)
                    .key(format!("agw:rl:{key}:{window}"))
                    .arg(period)
                    .invoke_async(&mut connection)
                    .await;
                match result {
                    Ok(count) => count,
                    Err(err) => {
                        // Failing open keeps the API up when Redis is not; say so loudly.
                        tracing::error!(error = %err, "rate limit storage unavailable; request allowed");
                        return Verdict::Allowed;
                    }
                }
            }
        };
        if count > u64::from(rate.count) {
            Verdict::Limited {
                retry_after,
                limit: rate.count,
            }
        } else {
            Verdict::Allowed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        assert!(matches("/v1/agents/*/invoke", "/v1/agents/writer/invoke"));
        assert!(!matches("/v1/agents/*/invoke", "/v1/agents/writer/chat"));
        assert!(!matches("/v1/agents/*", "/v1/agents/a/invoke"));
        assert!(matches("/v1/health", "/v1/health/"));
    }

    #[tokio::test]
    async fn the_window_allows_the_limit_then_refuses() {
        let config = RateLimitConfig {
            enabled: true,
            default_limit: "3/minute".into(),
            routes: [("/v1/agents/*/invoke".to_string(), "1/minute".to_string())].into(),
            ..RateLimitConfig::default()
        };
        let Ok(Some(limiter)) = RateLimiter::from_config(&config).await else {
            unreachable!("valid configuration")
        };
        assert_eq!(limiter.check("a", "/v1/agents").await, Verdict::Allowed);
        assert_eq!(
            limiter.check("a", "/v1/agents/x/invoke").await,
            Verdict::Allowed
        );
        assert!(matches!(
            limiter.check("a", "/v1/agents/x/invoke").await,
            Verdict::Limited { limit: 1, .. }
        ));
        assert!(matches!(
            limiter.check("a", "/v1/agents").await,
            Verdict::Limited { limit: 3, .. }
        ));
        assert_eq!(
            limiter.check("b", "/v1/agents").await,
            Verdict::Allowed,
            "per caller"
        );
    }
}
