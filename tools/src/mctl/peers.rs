//! `mctl peers`: every peer and its links (`GET /api/v1/peers`), one row
//! per link; a peer without links has one row with dashes.

use std::io::Write;

use mycelium_control::api::types::PeerInfo;

use super::table::{Table, bits_per_second, bytes, duration, millis, or_dash, percent, short_key};
use super::{Global, client::Client, print_json};

pub fn run(g: &Global, out: &mut dyn Write) -> anyhow::Result<()> {
    let peers: Vec<PeerInfo> = Client::for_node(g).get("/api/v1/peers", &[])?;
    if g.json {
        return print_json(out, &peers);
    }
    if peers.is_empty() {
        writeln!(out, "no peers (add one with: mctl peer add udp://HOST:PORT)")?;
        return Ok(());
    }
    table(&peers).print(out)?;
    Ok(())
}

fn table(peers: &[PeerInfo]) -> Table {
    let mut t = Table::new(&[
        "ENDPOINT",
        "PEER",
        "ADDRESS",
        "STATE",
        "HANDSHAKE",
        "LINK",
        "CLASS",
        "LINK STATE",
        "RTT",
        "JITTER",
        "LOSS",
        "BANDWIDTH",
        "COST",
        "RX",
        "TX",
    ])
    .right(&[5, 8, 9, 10, 11, 12, 13, 14]);
    for p in peers {
        let peer = vec![
            p.endpoint.clone(),
            short_key(&p.public_key),
            if p.address.is_empty() { "-".to_owned() } else { p.address.clone() },
            p.state.clone(),
            or_dash(p.last_handshake_seconds_ago, |s| format!("{} ago", duration(s))),
        ];
        if p.links.is_empty() {
            t.row(peer.iter().cloned().chain(std::iter::repeat_n("-".to_owned(), 10)).collect());
        }
        for (i, l) in p.links.iter().enumerate() {
            let mut row = if i == 0 { peer.clone() } else { vec![String::new(); 5] };
            row.extend([
                l.id.to_string(),
                l.class.clone(),
                l.state.clone(),
                or_dash(l.rtt_ms, millis),
                or_dash(l.jitter_ms, millis),
                percent(l.loss_ratio),
                or_dash(l.bandwidth_bps, bits_per_second),
                if l.cost == u16::MAX { "inf".to_owned() } else { l.cost.to_string() },
                bytes(l.rx_bytes),
                bytes(l.tx_bytes),
            ]);
            t.row(row);
        }
    }
    t
}
