//! The admin API: routing and errors without sockets, then the real server
//! on an ephemeral loopback port, fed garbage.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use mycelium_dataplane::engine::counters::DropReason;
use proptest::prelude::*;

use super::fake::{FakeNode, PEER_A_KEY};
use super::server::{BodyError, Method, Request};
use super::types::*;
use super::*;

fn req(method: Method, url: &str, body: &[u8]) -> Request {
    Request { method, url: url.to_owned(), body: Ok(body.to_vec()), authorization: None }
}

fn get(state: &FakeNode, url: &str) -> (u16, serde_json::Value) {
    let reply = handle(state, req(Method::Get, url, b""));
    assert_eq!(reply.content_type, "application/json");
    (reply.status, serde_json::from_slice(&reply.body).unwrap())
}

#[test]
fn node_peers_counters_and_graph_are_served_as_camel_case_json() {
    let fake = FakeNode::default();
    let (status, node) = get(&fake, "/api/v1/node");
    assert_eq!(status, 200);
    assert_eq!(node["publicKey"].as_str().unwrap().len(), 64);
    assert_eq!(node["snapshot"]["generation"], 42);
    assert_eq!(node["shards"][1]["core"], 3);
    assert_eq!(node["totals"]["drops"], 8);
    let back: NodeInfo = serde_json::from_value(node).unwrap();
    assert_eq!(back, fake.node().unwrap());

    let (_, peers) = get(&fake, "/api/v1/peers");
    assert_eq!(peers[0]["links"][1]["class"], "cellular");
    assert_eq!(peers[0]["links"][1]["lossRatio"], 0.05);
    assert_eq!(peers[0]["lastHandshakeSecondsAgo"], 12.0);

    let (_, counters) = get(&fake, "/api/v1/counters");
    let shard0 = &counters["shards"][0];
    assert_eq!(shard0["underlayRxPackets"], 1000);
    assert_eq!(shard0["drops"].as_object().unwrap().len(), DropReason::COUNT);
    assert_eq!(shard0["drops"]["no_route"], 5);
    assert_eq!(counters["shards"][1]["drops"]["auth_failed"], 2);

    let (_, graph) = get(&fake, "/api/v1/graph");
    assert_eq!(graph["paths"][0]["hops"].as_array().unwrap().len(), 3);
    assert_eq!(graph["nodes"][0]["local"], true);
}

#[test]
fn routes_are_filtered_by_state() {
    let fake = FakeNode::default();
    let count = |url: &str| get(&fake, url).1.as_array().unwrap().len();
    assert_eq!(count("/api/v1/routes"), 3);
    assert_eq!(count("/api/v1/routes?state=all"), 3);
    assert_eq!(count("/api/v1/routes?state=selected"), 2);
    assert_eq!(count("/api/v1/routes?state=fallback"), 1);
    let (_, fallback) = get(&fake, "/api/v1/routes?state=fallback");
    assert_eq!(fallback[0]["state"], "fallback");
    assert_eq!(fallback[0]["nextHop"]["link"], 3);
    assert_eq!(fallback[0]["parts"][0]["class"], "fiber");
    let (status, err) = get(&fake, "/api/v1/routes?state=best");
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("best"));
}

#[test]
fn lookup_gives_the_chosen_route_and_why_the_others_lost() {
    let fake = FakeNode::default();
    let (status, v) = get(&fake, "/api/v1/routes/lookup?address=4cc:2::3");
    assert_eq!(status, 200);
    let lookup: RouteLookup = serde_json::from_value(v).unwrap();
    assert_eq!(lookup.selected.unwrap().metric, 312);
    assert_eq!(lookup.alternatives.len(), 1);
    assert_eq!(lookup.alternatives[0].reason, "metric 7155 > 312");

    let (status, v) = get(&fake, "/api/v1/routes/lookup?address=5ff::1");
    assert_eq!(status, 200);
    assert!(v["selected"].is_null());

    for bad in ["/api/v1/routes/lookup", "/api/v1/routes/lookup?address=10.0.0.1", "/api/v1/routes/lookup?address="] {
        assert_eq!(get(&fake, bad).0, 400, "{bad}");
    }
}

#[test]
fn peers_are_added_and_removed_with_conflicts_and_misses_reported() {
    let fake = FakeNode::default();
    let post = |body: &[u8]| handle(&fake, req(Method::Post, "/api/v1/peers", body));
    let reply = post(br#"{"endpoint":"udp://198.51.100.7:9651"}"#);
    assert_eq!(reply.status, 201);
    assert_eq!(fake.peers().unwrap().len(), 3);
    assert_eq!(post(br#"{"endpoint":"udp://198.51.100.7:9651"}"#).status, 409);
    assert_eq!(post(br#"{"endpoint":"tcp://x"}"#).status, 400);
    assert_eq!(post(br#"{"endpoint":""}"#).status, 400);
    assert_eq!(post(br#"{"endpoint":"udp://a\nb:1"}"#).status, 400);
    assert_eq!(post(br#"{"endpoint":"udp://x:1","extra":1}"#).status, 400);
    assert_eq!(post(b"not json").status, 400);

    let delete = |url: &str| handle(&fake, req(Method::Delete, url, b""));
    assert_eq!(delete("/api/v1/peers?endpoint=udp%3A%2F%2F198.51.100.7%3A9651").status, 200);
    assert_eq!(fake.peers().unwrap().len(), 2);
    let missing = delete("/api/v1/peers?endpoint=udp://198.51.100.7:9651");
    assert_eq!(missing.status, 404);
    assert_eq!(delete("/api/v1/peers").status, 400);
    assert!(fake.peers().unwrap().iter().any(|p| p.public_key == PEER_A_KEY));
}

#[test]
fn wrong_methods_unknown_paths_and_big_bodies_get_their_status() {
    let fake = FakeNode::default();
    let reply = handle(&fake, req(Method::Post, "/api/v1/node", b""));
    assert_eq!((reply.status, reply.allow), (405, Some("GET")));
    let reply = handle(&fake, req(Method::Other("PATCH".into()), "/api/v1/peers", b""));
    assert_eq!((reply.status, reply.allow), (405, Some("GET, POST, DELETE")));
    assert_eq!(handle(&fake, req(Method::Get, "/api/v2/node", b"")).status, 404);
    assert_eq!(handle(&fake, req(Method::Get, "/api/v1/node?x=1", b"")).status, 400);
    assert_eq!(handle(&fake, req(Method::Get, "/api/v1/node/", b"")).status, 200);
    let big = Request {
        method: Method::Post,
        url: "/api/v1/peers".into(),
        body: Err(BodyError::TooLarge),
        authorization: None,
    };
    assert_eq!(handle(&fake, big).status, 413);
}

#[test]
fn with_a_token_changes_need_it_and_reads_do_not() {
    let with = |method: Method, auth: Option<&str>| Request {
        method,
        url: "/api/v1/peers".into(),
        body: Ok(Vec::new()),
        authorization: auth.map(str::to_owned),
    };
    assert!(authorize(None, &with(Method::Post, None)).is_ok());
    let token = Some("s3cret");
    assert!(authorize(token, &with(Method::Get, None)).is_ok());
    assert!(authorize(token, &with(Method::Post, Some("Bearer s3cret"))).is_ok());
    assert!(authorize(token, &with(Method::Delete, Some("Bearer s3cret"))).is_ok());
    for wrong in [None, Some("Bearer s3cre"), Some("Bearer s3cretx"), Some("s3cret"), Some("Basic s3cret")] {
        let reply = authorize(token, &with(Method::Post, wrong)).unwrap_err();
        assert_eq!(reply.status, 401, "{wrong:?}");
        assert!(String::from_utf8_lossy(&reply.body).contains("API token"));
    }
    assert_eq!(authorize(token, &with(Method::Other("PUT".into()), None)).unwrap_err().status, 401);
}

#[test]
fn daemon_errors_keep_their_status_and_message() {
    let fake = FakeNode::default();
    fake.with(|d| d.fail = Some(ApiError::Unavailable("engine loop busy".into())));
    let (status, v) = get(&fake, "/api/v1/peers");
    assert_eq!((status, v["error"].as_str()), (503, Some("engine loop busy")));
    fake.with(|d| d.fail = Some(ApiError::Internal("boom".into())));
    assert_eq!(get(&fake, "/api/v1/graph").0, 500);
}

proptest! {
    #[test]
    fn any_request_gets_a_json_reply_and_never_panics(
        method in prop_oneof![Just(Method::Get), Just(Method::Post), Just(Method::Delete), Just(Method::Head)],
        path in prop_oneof![
            Just("/api/v1/node".to_string()), Just("/api/v1/peers".to_string()),
            Just("/api/v1/routes".to_string()), Just("/api/v1/routes/lookup".to_string()),
            "[ -~]{0,40}",
        ],
        query in "[ -~%]{0,40}",
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let fake = FakeNode::default();
        let reply = handle(&fake, req(method, &format!("{path}?{query}"), &body));
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        prop_assert!([200, 201, 400, 404, 405, 409].contains(&reply.status), "{}", reply.status);
        if reply.status >= 400 {
            prop_assert!(v["error"].is_string());
        }
    }
}

// The real server.

fn serve(fake: Arc<FakeNode>) -> HttpServer {
    let config = ApiConfig { addr: "127.0.0.1:0".parse().unwrap(), ..ApiConfig::default() };
    start(&config, fake).unwrap()
}

fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may close early (a 413 or a 400 before reading it all).
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> Option<u16> {
    response.split(' ').nth(1)?.parse().ok()
}

#[test]
fn the_server_checks_the_token_on_changes() {
    let config = ApiConfig { addr: "127.0.0.1:0".parse().unwrap(), token: Some("t0k".into()), ..ApiConfig::default() };
    let fake = Arc::new(FakeNode::default());
    let server = start(&config, fake.clone()).unwrap();
    let addr = server.local_addr();
    let body = r#"{"endpoint":"udp://192.0.2.9:1"}"#;
    let post = |auth: &str| {
        let head = format!(
            "POST /api/v1/peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
            body.len()
        );
        raw(addr, format!("{head}{body}").as_bytes())
    };
    assert_eq!(status_of(&post("")), Some(401));
    assert_eq!(status_of(&post("Authorization: Bearer nope\r\n")), Some(401));
    assert_eq!(fake.peers().unwrap().len(), 2);
    assert_eq!(status_of(&post("Authorization: Bearer t0k\r\n")), Some(201));
    assert_eq!(fake.peers().unwrap().len(), 3);
    let read = raw(addr, b"GET /api/v1/peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&read), Some(200));
}

#[test]
fn a_non_loopback_address_is_refused_unless_allowed() {
    let config = ApiConfig { addr: "0.0.0.0:0".parse().unwrap(), ..ApiConfig::default() };
    let err = start(&config, Arc::new(FakeNode::default())).unwrap_err();
    assert!(matches!(err, ServeError::NotLoopback { .. }), "{err}");
    assert!(err.to_string().contains("not a loopback address"));
    let config = ApiConfig { allow_public: true, ..config };
    let server = start(&config, Arc::new(FakeNode::default())).unwrap();
    assert_ne!(server.local_addr().port(), 0);
}

#[test]
fn the_server_answers_over_tcp_and_survives_garbage() {
    let server = serve(Arc::new(FakeNode::default()));
    let addr = server.local_addr();
    let ok = raw(addr, b"GET /api/v1/node HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&ok), Some(200), "{ok}");
    assert!(ok.contains("application/json") && ok.contains("\"publicKey\""), "{ok}");

    let big_body = format!(
        "POST /api/v1/peers HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        MAX_BODY + 1,
        "x".repeat(MAX_BODY + 1)
    );
    assert_eq!(status_of(&raw(addr, big_body.as_bytes())), Some(413));
    let wrong = raw(addr, b"PUT /api/v1/node HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&wrong), Some(405));
    assert!(wrong.to_ascii_lowercase().contains("allow: get"), "{wrong}");

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut junk = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let garbage: Vec<Vec<u8>> = vec![
        b"\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /api/v1/routes/lookup?address=%zz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /api/v1/peers HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec(),
        b"POST /api/v1/peers HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100_000)).into_bytes(),
        junk(5000),
        junk(3),
    ];
    for g in &garbage {
        let reply = raw(addr, g);
        if let Some(status) = status_of(&reply) {
            assert!((400..600).contains(&status) || status == 200, "{status}: {reply}");
        }
    }
    let after = raw(addr, b"GET /api/v1/peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&after), Some(200), "the server died: {after}");
    server.shutdown();
    // tiny_http closes its listener from its accept thread, shortly after.
    let closed = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
    });
    assert!(closed, "still listening 2 s after shutdown");
}
