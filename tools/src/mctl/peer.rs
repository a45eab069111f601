//! `mctl peer add ENDPOINT` and `mctl peer remove ENDPOINT`
//! (`POST /api/v1/peers`, `DELETE /api/v1/peers?endpoint=`).

use std::io::Write;

use clap::Subcommand;
use mycelium_control::api::types::PeerRequest;

use super::{Global, client::Client, print_json};

#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Connect to a peer at ENDPOINT (udp://host:port).
    Add {
        /// e.g. udp://192.0.2.1:9651 or udp://[2001:db8::1]:9651
        endpoint: String,
    },
    /// Disconnect from the peer at ENDPOINT and forget it.
    Remove {
        /// The endpoint as `mctl peers` shows it.
        endpoint: String,
    },
}

pub fn run(g: &Global, cmd: PeerCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let client = Client::for_node(g);
    let (done, reply): (&str, PeerRequest) = match cmd {
        PeerCommand::Add { endpoint } => ("added", client.post("/api/v1/peers", &PeerRequest { endpoint })?),
        PeerCommand::Remove { endpoint } => {
            ("removed", client.delete("/api/v1/peers", &[("endpoint", endpoint.as_str())])?)
        }
    };
    if g.json {
        return print_json(out, &reply);
    }
    writeln!(out, "{done} peer {}", reply.endpoint)?;
    Ok(())
}
