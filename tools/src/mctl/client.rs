//! The admin API client: blocking HTTP to `myceliumd` on loopback (ureq,
//! no proxy, no redirects, short timeouts), JSON in and out.
//!
//! Failures come in three kinds, which decide `mctl`'s exit code:
//! [`Unreachable`] (nothing answered: exit 3), an API error reply (the
//! daemon said no, with its message: exit 1), or a reply that is not what
//! this `mctl` understands (exit 1).

use std::time::Duration;

use anyhow::{Context, anyhow};
use mycelium_control::api::types::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Nothing answered at the API address.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach myceliumd at {url}: {reason} (is it running?)")]
pub struct Unreachable {
    /// The base URL tried.
    pub url: String,
    /// Why, in a few words.
    pub reason: String,
}

/// The largest reply read (a big mesh's route table fits easily).
const MAX_REPLY: u64 = 64 * 1024 * 1024;

/// A client of one daemon's admin API.
#[derive(Debug)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// The API token, or why it could not be read (for the 401 message).
    token: Result<String, String>,
}

impl Client {
    /// A client for `--api`, sending the token from `--token-file` when it
    /// can read it.
    pub fn for_node(g: &super::Global) -> Self {
        let path = &g.token_file;
        let token = match std::fs::read_to_string(path) {
            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
            Ok(_) => Err(format!("{} is empty", path.display())),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        };
        Client { token, ..Client::new(&g.api) }
    }

    /// A client for `api`: `host:port`, `[v6]:port` or a full `http://` URL.
    pub fn new(api: &str) -> Self {
        let trimmed = api.trim_end_matches('/');
        let base = if trimmed.contains("://") { trimmed.to_owned() } else { format!("http://{trimmed}") };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(3)))
            .timeout_global(Some(Duration::from_secs(15)))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build()
            .into();
        Client { base, agent, token: Err("no token file given".to_owned()) }
    }

    /// The base URL (for messages).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path?query`, decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<T> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        self.finish(path, req.call())
    }

    /// `POST path` with a JSON body, reply decoded as `T`.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> anyhow::Result<T> {
        let body = serde_json::to_string(body)?;
        let mut req = self.agent.post(format!("{}{path}", self.base)).header("Content-Type", "application/json");
        if let Ok(token) = &self.token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        self.finish(path, req.send(body))
    }

    /// `DELETE path?query`, reply decoded as `T`.
    pub fn delete<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<T> {
        let mut req = self.agent.delete(format!("{}{path}", self.base));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        if let Ok(token) = &self.token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        self.finish(path, req.call())
    }

    fn finish<T: DeserializeOwned>(
        &self,
        path: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        let response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(MAX_REPLY)
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<ErrorBody>(&text).map(|b| b.error).unwrap_or(text);
            if let (401, Err(why)) = (status, &self.token) {
                return Err(anyhow!("myceliumd answered 401: {message}; mctl has no token: {why}"));
            }
            return Err(anyhow!("myceliumd answered {status}: {message}"));
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{}{path}: unexpected reply (is this a myceliumd?)", self.base))
    }

    fn transport_error(&self, e: ureq::Error) -> anyhow::Error {
        let reason = match &e {
            ureq::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".to_owned(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
                _ => io.to_string(),
            },
            ureq::Error::Timeout(_) => "timed out".to_owned(),
            ureq::Error::HostNotFound => "host not found".to_owned(),
            ureq::Error::ConnectionFailed => "connection failed".to_owned(),
            // Anything else (a bad URL, a protocol error) is not "not running".
            other => return anyhow!("{}: {other}", self.base),
        };
        Unreachable { url: self.base.clone(), reason }.into()
    }
}
