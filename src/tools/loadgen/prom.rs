//! Reading the gateway's `/metrics`: a plain HTTP/1.0 GET (no client
//! library: one request per run phase) and a lenient parser of the
//! Prometheus text format that keeps samples as (name, labels, value).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one scrape may take.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`/`_sum`/`_count` suffixes as written).
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// Samples of one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Every sample line that parsed.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses Prometheus text; lines that do not parse are skipped.
    pub fn parse(text: &str) -> Scrape {
        Scrape {
            samples: text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .filter_map(parse_sample)
                .collect(),
        }
    }

    /// Sum of `name` over the samples whose labels include every pair of
    /// `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && matches(s, filter))
            .map(|s| s.value)
            .sum()
    }

    /// Sum of `name` per value of label `by`, over samples matching `filter`.
    pub fn sum_by(
        &self,
        name: &str,
        by: &str,
        filter: &[(&str, &str)],
    ) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        for s in self
            .samples
            .iter()
            .filter(|s| s.name == name && matches(s, filter))
        {
            let key = s
                .labels
                .iter()
                .find(|(k, _)| k == by)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }
}

fn matches(s: &Sample, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

/// Parses `name{a="b",c="d"} value [timestamp]`.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(r)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `a="b",c="d"}` and returns the pairs and what follows the `}`.
#[allow(clippy::type_complexity)]
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix('}') {
            return Some((out, r));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        out.push((key, value));
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// Fetches `url` (`http://host:port/path`; the path defaults to `/metrics`)
/// and returns the body.
///
/// # Errors
/// A URL that is not `http://`, a connection or read failure, a timeout
/// ([`SCRAPE_TIMEOUT`]) or a status other than 200.
pub async fn fetch(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("metrics URL {url:?}: only http:// is supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let body = tokio::time::timeout(SCRAPE_TIMEOUT, async {
        let mut s = tokio::net::TcpStream::connect(host).await?;
        // HTTP/1.0: the answer is close-delimited or sized, never chunked.
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    })
    .await
    .map_err(|_| anyhow::anyhow!("scraping {url}: no answer within {SCRAPE_TIMEOUT:?}"))?
    .map_err(|e| anyhow::anyhow!("scraping {url}: {e}"))?;
    let text = String::from_utf8_lossy(&body);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("scraping {url}: not an HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        anyhow::bail!("scraping {url}: {status}");
    }
    Ok(body.to_owned())
}
