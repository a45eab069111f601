use std::path::Path;

use clap::Parser;

use super::*;

fn from_file(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::from_sources(Some((Path::new("node.toml"), text)), &Cli::default())
}

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from([&["myceliumd"], args].concat()).unwrap()
}

fn message(result: Result<NodeConfig, ConfigError>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn no_file_and_no_flags_give_the_documented_defaults() {
    let config = NodeConfig::from_sources(None, &Cli::default()).unwrap();
    assert_eq!(config, NodeConfig::default());
    assert_eq!(config.port, 9651);
    assert_eq!(config.api_listen.to_string(), "127.0.0.1:8990");
    assert_eq!(config.metrics_listen.to_string(), "127.0.0.1:9990");
    assert!(config.lan_discovery && !config.no_tun);
}

#[test]
fn the_example_config_parses_and_sets_every_key() {
    let text = include_str!("../../node.example.toml");
    let config = from_file(text).unwrap();
    assert_eq!(config.peers.len(), 3);
    assert_eq!(config.peers[0].class, Some(LinkClass::Fiber));
    assert_eq!(config.peers[1].class, Some(LinkClass::Satellite));
    assert!(config.peers[2].peer.key.is_some());
    assert_eq!(config.cores, Some(vec![0, 2, 3, 4, 5]));
    assert_eq!(config.instance.as_deref(), Some("lab-node-1"));
    assert_eq!(config.position, Some(GeoPosition { lat_e7: 523_676_000, lon_e7: 49_041_000 }));
    // Every key the file format knows appears in the example.
    let file: toml::Table = toml::from_str(text).unwrap();
    let expected = [
        "key_file",
        "port",
        "peers",
        "peer_class",
        "tun_name",
        "cores",
        "api_listen",
        "metrics_listen",
        "instance",
        "no_tun",
        "transit_limit_mbps",
        "no_offload",
        "busy_poll_us",
        "no_steer",
        "lan_discovery",
        "target_peers",
        "position",
        "log_level",
        "log_format",
    ];
    let mut keys: Vec<_> = file.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
}

#[test]
fn flags_override_the_file() {
    let text = "port = 1000\npeers = [\"udp://192.0.2.1:1\"]\nlan_discovery = false\nno_tun = true\n";
    let args = cli(&["--port", "2000", "--peer", "udp://192.0.2.2:2", "--lan-discovery", "--no-tun=false"]);
    let config = NodeConfig::from_sources(Some((Path::new("f"), text)), &args).unwrap();
    assert_eq!(config.port, 2000);
    assert_eq!(config.peers.len(), 1);
    assert_eq!(config.peers[0].peer.to_string(), "udp://192.0.2.2:2");
    assert!(config.lan_discovery);
    assert!(!config.no_tun);
    let only_file = NodeConfig::from_sources(Some((Path::new("f"), text)), &Cli::default()).unwrap();
    assert_eq!((only_file.port, only_file.lan_discovery, only_file.no_tun), (1000, false, true));
}

#[test]
fn every_flag_is_accepted() {
    let args = cli(&[
        "--config",
        "x.toml",
        "--key-file",
        "k",
        "--port",
        "1",
        "--peer",
        "udp://192.0.2.1:1",
        "--peer-class",
        "udp://192.0.2.1:1=wifi",
        "--tun-name",
        "tun0",
        "--cores",
        "1-2",
        "--api-listen",
        "[::1]:1",
        "--metrics-listen",
        "[::1]:2",
        "--instance",
        "i",
        "--no-tun",
        "--lan-discovery=false",
        "--target-peers",
        "3",
        "--position",
        "1.5,-2",
        "--log-level",
        "debug",
        "--log-format",
        "json",
    ]);
    let config = NodeConfig::from_sources(None, &args).unwrap();
    assert_eq!(config.peers[0].class, Some(LinkClass::Wifi));
    assert_eq!(config.cores, Some(vec![1, 2]));
    assert_eq!(config.position, Some(GeoPosition { lat_e7: 15_000_000, lon_e7: -20_000_000 }));
    assert_eq!((config.no_tun, config.lan_discovery, config.target_peers), (true, false, 3));
    assert_eq!(config.log_format, LogFormat::Json);
}

#[test]
fn invalid_values_are_reported_with_their_key_and_value() {
    let cases = [
        (
            "peers = [\"udp://192.0.2.1:1\", \"udp://192.0.2.2:2\", \"udp://x\"]",
            "config: peers[2] = \"udp://x\": missing port",
        ),
        ("peers = [\"tcp://a:1\"]", "config: peers[0] = \"tcp://a:1\": scheme \"tcp\" is not supported"),
        ("peers = [\"udp://a:1\", \"udp://a:1\"]", "config: peers[1] = \"udp://a:1\": listed twice"),
        ("port = 70000", "config: port = 70000: expected 1-65535"),
        ("port = 0", "config: port = 0: expected 1-65535"),
        ("cores = \"0,5-2\"", "config: cores = \"0,5-2\": range 5-2 runs backwards"),
        ("cores = \"0,,1\"", "config: cores = \"0,,1\": empty entry"),
        ("cores = \"a\"", "config: cores = \"a\": \"a\" is not a core number"),
        ("api_listen = \"localhost\"", "config: api_listen = \"localhost\": expected IP:PORT"),
        ("metrics_listen = \"1.2.3.4\"", "config: metrics_listen = \"1.2.3.4\": expected IP:PORT"),
        ("tun_name = \"a/b\"", "config: tun_name = \"a/b\": an interface name"),
        ("tun_name = \"sixteen-chars-xx\"", "config: tun_name = \"sixteen-chars-xx\""),
        ("instance = \"../etc\"", "config: instance = \"../etc\""),
        ("target_peers = -1", "config: target_peers = -1: expected 0-256"),
        ("transit_limit_mbps = 0.0", "config: transit_limit_mbps = 0.0: expected Mbit/s between"),
        ("transit_limit_mbps = -5.0", "config: transit_limit_mbps = -5.0: expected Mbit/s between"),
        ("busy_poll_us = 10001", "config: busy_poll_us = 10001: expected 0-10000 microseconds"),
        ("busy_poll_us = -1", "config: busy_poll_us = -1: expected 0-10000 microseconds"),
        ("position = { lat = 91.0, lon = 0.0 }", "config: position = { lat = 91.0, lon = 0.0 }: latitude"),
        ("log_level = \"loud\"", "config: log_level = \"loud\": expected error, warn"),
        ("log_format = \"xml\"", "config: log_format = \"xml\": expected text or json"),
        (
            "peers = [\"udp://192.0.2.1:1\"]\n[peer_class]\n\"udp://192.0.2.1:1\" = \"copper\"",
            "config: peer_class.\"udp://192.0.2.1:1\" = \"copper\": expected fiber",
        ),
        (
            "[peer_class]\n\"udp://192.0.2.9:1\" = \"fiber\"",
            "config: peer_class.\"udp://192.0.2.9:1\" = \"fiber\": not one of the peers",
        ),
    ];
    for (text, expected) in cases {
        let got = message(from_file(text));
        assert!(got.starts_with(expected), "{text}\n  got:      {got}\n  expected: {expected}");
    }
}

#[test]
fn unknown_keys_and_bad_types_are_refused_with_the_file_and_key() {
    let got = message(from_file("prot = 9651"));
    assert!(got.starts_with("config: node.toml:") && got.contains("unknown field `prot`"), "{got}");
    let got = message(from_file("port = \"9651\""));
    assert!(got.contains("port"), "{got}");
    let got = message(from_file("position = { lat = 1.0, lon = 2.0, alt = 3.0 }"));
    assert!(got.contains("unknown field `alt`"), "{got}");
}

#[test]
fn bad_flags_are_reported_like_bad_keys() {
    let got = message(NodeConfig::from_sources(None, &cli(&["--position", "north"])));
    assert_eq!(got, "config: position = \"north\": expected \"LAT,LON\" in degrees");
    let got = message(NodeConfig::from_sources(None, &cli(&["--peer-class", "fiber"])));
    assert_eq!(got, "config: peer_class[0] = \"fiber\": expected URL=CLASS");
}

#[test]
fn a_missing_config_file_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let args = Cli { config: Some(path.clone()), ..Cli::default() };
    let got = message(NodeConfig::load(&args));
    assert!(got.starts_with(&format!("config: cannot read {}", path.display())), "{got}");
    std::fs::write(&path, "port = 1234\n").unwrap();
    assert_eq!(NodeConfig::load(&args).unwrap().port, 1234);
}

#[test]
fn the_default_instance_is_the_nodes_64_and_a_configured_one_wins() {
    let key = mycelium_common::identity::SecretKey::from_bytes([5; 32]);
    let address = key.address();
    let mut config = NodeConfig::default();
    let name = config.instance_name(&address);
    assert_eq!(name.len(), 16);
    assert_eq!(name, hex::encode(&address.octets()[..8]));
    config.instance = Some("lab".into());
    assert_eq!(config.instance_name(&address), "lab");
}

#[test]
fn discovery_settings_follow_the_config() {
    let config = NodeConfig { port: 7, target_peers: 2, lan_discovery: false, ..NodeConfig::default() };
    let d = config.discovery_config();
    assert_eq!((d.port, d.target_peers, d.lan), (7, 2, false));
}

#[test]
fn the_help_text_lists_every_flag() {
    use clap::CommandFactory;
    let help = Cli::command().render_long_help().to_string();
    for flag in [
        "--config",
        "--key-file",
        "--port",
        "--peer ",
        "--peer-class",
        "--tun-name",
        "--cores",
        "--api-listen",
        "--metrics-listen",
        "--instance",
        "--no-tun",
        "--no-offload",
        "--no-steer",
        "--lan-discovery",
        "--target-peers",
        "--position",
        "--log-level",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("udp://[KEY@]HOST:PORT"));
    Cli::command().debug_assert();
}

#[test]
fn busy_polling_is_off_unless_the_file_or_a_flag_sets_a_window() {
    assert_eq!(from_file("").unwrap().busy_poll_us, 0);
    let file = "busy_poll_us = 200\n";
    assert_eq!(from_file(file).unwrap().busy_poll_us, 200);
    let flag = NodeConfig::from_sources(Some((Path::new("f"), file)), &cli(&["--busy-poll-us", "50"])).unwrap();
    assert_eq!(flag.busy_poll_us, 50);
}

#[test]
fn offloads_are_on_unless_the_file_or_a_flag_turns_them_off() {
    assert!(!from_file("").unwrap().no_offload);
    let file = "no_offload = true\n";
    assert!(from_file(file).unwrap().no_offload);
    let flag_on = NodeConfig::from_sources(Some((Path::new("f"), file)), &cli(&["--no-offload=false"])).unwrap();
    assert!(!flag_on.no_offload);
    assert!(NodeConfig::from_sources(None, &cli(&["--no-offload"])).unwrap().no_offload);
}

#[test]
fn steering_is_on_unless_the_file_or_a_flag_turns_it_off() {
    assert!(!from_file("").unwrap().no_steer);
    let file = "no_steer = true\n";
    assert!(from_file(file).unwrap().no_steer);
    let flag_on = NodeConfig::from_sources(Some((Path::new("f"), file)), &cli(&["--no-steer=false"])).unwrap();
    assert!(!flag_on.no_steer);
    assert!(NodeConfig::from_sources(None, &cli(&["--no-steer"])).unwrap().no_steer);
}
