//! [`handle`]: one request to one reply, no sockets involved.

use std::net::Ipv6Addr;

use serde::Serialize;

use super::query::Target;
use super::server::{BodyError, Method, Reply, Request};
use super::types::{Counters, ErrorBody, PeerRequest, RouteState};
use super::{AdminState, ApiError, MAX_ENDPOINT_LEN};

const JSON: &str = "application/json";

/// Answers one admin API request from `state`.
pub fn handle(state: &dyn AdminState, req: Request) -> Reply {
    match route(state, req) {
        Ok(reply) => reply,
        Err(Failure::Api(e)) => error(e.status(), &e.to_string()),
        Err(Failure::Method(allow)) => {
            Reply { allow: Some(allow), ..error(405, &format!("method not allowed (allowed: {allow})")) }
        }
        Err(Failure::TooLarge) => error(413, "request body too large"),
    }
}

enum Failure {
    Api(ApiError),
    Method(&'static str),
    TooLarge,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::Api(ApiError::BadRequest(msg.into()))
}

fn route(state: &dyn AdminState, req: Request) -> Result<Reply, Failure> {
    let target = Target::parse(&req.url).map_err(bad)?;
    let get_only = |allowed: &[&str]| -> Result<(), Failure> {
        if req.method != Method::Get {
            return Err(Failure::Method("GET"));
        }
        target.only(allowed).map_err(bad)
    };
    match target.path.trim_end_matches('/') {
        "/api/v1/node" => {
            get_only(&[])?;
            json(200, &state.node()?)
        }
        "/api/v1/peers" => match req.method {
            Method::Get => {
                target.only(&[]).map_err(bad)?;
                json(200, &state.peers()?)
            }
            Method::Post => {
                target.only(&[]).map_err(bad)?;
                let body = req.body.map_err(body_failure)?;
                let peer: PeerRequest = serde_json::from_slice(&body)
                    .map_err(|e| bad(format!("body must be {{\"endpoint\": \"udp://host:port\"}}: {e}")))?;
                check_endpoint(&peer.endpoint)?;
                state.add_peer(&peer.endpoint)?;
                json(201, &peer)
            }
            Method::Delete => {
                target.only(&["endpoint"]).map_err(bad)?;
                let endpoint = target.get("endpoint").map_err(bad)?.ok_or_else(|| bad("missing ?endpoint="))?;
                check_endpoint(endpoint)?;
                state.remove_peer(endpoint)?;
                json(200, &PeerRequest { endpoint: endpoint.to_owned() })
            }
            _ => Err(Failure::Method("GET, POST, DELETE")),
        },
        "/api/v1/routes" => {
            get_only(&["state"])?;
            let filter = match target.get("state").map_err(bad)? {
                None | Some("all") => None,
                Some("selected") => Some(RouteState::Selected),
                Some("fallback") => Some(RouteState::Fallback),
                Some(other) => return Err(bad(format!("state {other:?}: expected selected, fallback or all"))),
            };
            let mut routes = state.routes()?;
            routes.retain(|r| filter.is_none_or(|f| r.state == f));
            json(200, &routes)
        }
        "/api/v1/routes/lookup" => {
            get_only(&["address"])?;
            let text = target.get("address").map_err(bad)?.ok_or_else(|| bad("missing ?address="))?;
            let address: Ipv6Addr =
                text.parse().map_err(|_| bad(format!("address {text:?} is not an IPv6 address")))?;
            json(200, &state.lookup(address)?)
        }
        "/api/v1/counters" => {
            get_only(&[])?;
            json(200, &Counters::from_shards(&state.counters()?))
        }
        "/api/v1/graph" => {
            get_only(&[])?;
            json(200, &state.graph()?)
        }
        _ => Err(Failure::Api(ApiError::NotFound(format!("no such endpoint: {}", target.path)))),
    }
}

/// Checks a changing request (`POST`, `DELETE`) carries `Bearer <token>`
/// when a token is configured; the reply to send otherwise (401).
pub fn authorize(token: Option<&str>, req: &Request) -> Result<(), Reply> {
    let Some(token) = token else { return Ok(()) };
    if matches!(req.method, Method::Get | Method::Head) {
        return Ok(());
    }
    let given = req.authorization.as_deref().and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
    if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        return Ok(());
    }
    Err(error(401, "changes need the API token (run as the daemon's user or root)"))
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn body_failure(e: BodyError) -> Failure {
    match e {
        BodyError::TooLarge => Failure::TooLarge,
        BodyError::Unreadable => bad("request body could not be read"),
    }
}

/// Cheap checks before the daemon parses the endpoint itself.
fn check_endpoint(endpoint: &str) -> Result<(), Failure> {
    if endpoint.is_empty() || endpoint.len() > MAX_ENDPOINT_LEN || endpoint.chars().any(char::is_control) {
        return Err(bad(format!(
            "endpoint must be 1 to {MAX_ENDPOINT_LEN} printable characters, e.g. udp://192.0.2.1:9651"
        )));
    }
    Ok(())
}

fn json(status: u16, value: &impl Serialize) -> Result<Reply, Failure> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(format!("encoding the reply: {e}")))?;
    Ok(Reply::new(status, JSON, body))
}

fn error(status: u16, message: &str) -> Reply {
    let body = serde_json::to_vec(&ErrorBody { error: message.to_owned() })
        .unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec());
    Reply::new(status, JSON, body)
}
