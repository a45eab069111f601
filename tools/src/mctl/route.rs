//! `mctl route ADDRESS`: what happens to a packet for ADDRESS now.
//!
//! First the dataplane's view: the live route snapshot, mapped read-only
//! from shared memory and validated (zero-copy, the same lookup the shards
//! do), with the route and next hop it gives. Then the daemon's view over
//! the API: the route it would choose now, and every alternative with the
//! reason it lost. Either part is printed when the other is unavailable
//! (exit code 3 then).

use std::io::Write;
use std::net::Ipv6Addr;

use anyhow::anyhow;
use clap::Args;
use mycelium_common::shm::{Poll, ShmError, SubscribeError, Subscriber};
use mycelium_common::snapshot::{LinkState, NextHop, RouteChannel, SnapshotView};
use mycelium_common::time::Timestamp;
use mycelium_control::api::types::{RouteInfo, RouteLookup};
use serde::Serialize;

use super::routes::{metric, next_hop, parts};
use super::table::{duration, short_key};
use super::{Global, client::Client, print_json, shm};

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// An overlay address, e.g. 4cc:2::3.
    pub address: Ipv6Addr,
}

/// What the dataplane would do, from the live snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneView {
    pub generation: u64,
    pub snapshot_age_seconds: f64,
    /// The longest-prefix match; `null`: packets are dropped (`no_route`).
    pub route: Option<SnapshotRoute>,
}

/// One route of the snapshot and its next hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRoute {
    pub prefix: String,
    pub metric: u16,
    pub seqno: u16,
    pub router_id: String,
    /// `null` for local delivery.
    pub link: Option<u32>,
    pub endpoint: Option<String>,
    pub peer: Option<String>,
    /// `up` or `down`, for a link.
    pub link_state: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    address: String,
    dataplane: Option<DataplaneView>,
    dataplane_error: Option<String>,
    daemon: Option<RouteLookup>,
    daemon_error: Option<String>,
}

pub fn run(g: &Global, args: &RouteArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let dataplane = dataplane_view(g, &args.address);
    let daemon: anyhow::Result<RouteLookup> =
        Client::for_node(g).get("/api/v1/routes/lookup", &[("address", &args.address.to_string())]);
    if g.json {
        let report = Report {
            address: args.address.to_string(),
            dataplane: dataplane.as_ref().ok().cloned(),
            dataplane_error: dataplane.as_ref().err().map(|e| format!("{e:#}")),
            daemon: daemon.as_ref().ok().cloned(),
            daemon_error: daemon.as_ref().err().map(|e| format!("{e:#}")),
        };
        print_json(out, &report)?;
    } else {
        print_text(&args.address, &dataplane, &daemon, out)?;
    }
    match (dataplane, daemon) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(dp), Err(d)) => {
            eprintln!("mctl: {dp:#}");
            Err(d)
        }
    }
}

/// Maps the live snapshot and looks `address` up in it.
pub fn dataplane_view(g: &Global, address: &Ipv6Addr) -> anyhow::Result<DataplaneView> {
    let dir = shm::shm_dir(g)?;
    let mut sub = Subscriber::<RouteChannel>::new(dir.clone());
    match sub.poll() {
        Ok(Poll::Updated { .. } | Poll::Unchanged) => {}
        Ok(Poll::NotPublished) if !dir.path().exists() => return Err(shm::missing(g, "no such directory").into()),
        Ok(Poll::NotPublished) => return Err(shm::missing(g, "no route snapshot published yet").into()),
        Err(SubscribeError::Shm(ShmError::Io { source, .. }))
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            return Err(anyhow!(
                "{}: permission denied: run mctl as the user myceliumd runs as (e.g. sudo -u mycelium mctl route)",
                dir.path().display()
            ));
        }
        Err(SubscribeError::Shm(e @ ShmError::InsecureDirectory { .. })) => {
            return Err(anyhow!(e)
                .context("mctl reads shared memory only as the user that owns it (e.g. sudo -u mycelium mctl route)"));
        }
        Err(e) => return Err(e.into()),
    }
    let view = sub.current().ok_or_else(|| shm::missing(g, "no valid route snapshot"))?;
    Ok(lookup(&view, address, Timestamp::now()))
}

/// The dataplane's answer for `address` in `view`, as of `now`.
pub fn lookup(view: &SnapshotView<'_>, address: &Ipv6Addr, now: Timestamp) -> DataplaneView {
    let route = view.lookup(&address.octets()).map(|hit| {
        let r = hit.route;
        let (link, endpoint, peer, link_state) = match hit.next_hop {
            NextHop::Local => (None, None, None, None),
            NextHop::Link(l) => (
                Some(l.id()),
                l.underlay().map(|a| a.to_string()),
                Some(hex::encode(l.peer())),
                Some(if l.state() == LinkState::Up { "up" } else { "down" }.to_owned()),
            ),
        };
        SnapshotRoute {
            prefix: format!("{}/{}", Ipv6Addr::from(r.prefix()), r.len()),
            metric: r.metric(),
            seqno: r.seqno(),
            router_id: hex::encode(r.router_id()),
            link,
            endpoint,
            peer,
            link_state,
        }
    });
    DataplaneView {
        generation: view.generation(),
        snapshot_age_seconds: now.saturating_since(view.created_at()).as_secs_f64(),
        route,
    }
}

fn print_text(
    address: &Ipv6Addr,
    dataplane: &anyhow::Result<DataplaneView>,
    daemon: &anyhow::Result<RouteLookup>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "route to {address}")?;
    match dataplane {
        Ok(dp) => {
            let age = duration(dp.snapshot_age_seconds);
            writeln!(out, "dataplane (snapshot generation {}, built {age} ago):", dp.generation)?;
            match &dp.route {
                None => writeln!(out, "  no route: packets to it are dropped (no_route)")?,
                Some(r) => {
                    writeln!(out, "  route:     {}  metric {}  seqno {}", r.prefix, metric(r.metric), r.seqno)?;
                    writeln!(out, "  router:    {}", r.router_id)?;
                    match r.link {
                        None => writeln!(out, "  next hop:  local (delivered to this node's TUN)")?,
                        Some(link) => writeln!(
                            out,
                            "  next hop:  link {link} to {} (peer {}, {})",
                            r.endpoint.as_deref().unwrap_or("-"),
                            short_key(r.peer.as_deref().unwrap_or("")),
                            r.link_state.as_deref().unwrap_or("-"),
                        )?,
                    }
                }
            }
        }
        Err(_) => writeln!(out, "dataplane: unavailable (see the error below)")?,
    }
    match daemon {
        Ok(lookup) => {
            writeln!(out, "daemon:")?;
            match &lookup.selected {
                None => writeln!(out, "  selected:      none")?,
                Some(r) => writeln!(out, "  selected:      {}", describe(r))?,
            }
            if lookup.alternatives.is_empty() {
                writeln!(out, "  alternatives:  none")?;
            } else {
                writeln!(out, "  alternatives:")?;
                for alt in &lookup.alternatives {
                    writeln!(out, "    {}", describe(&alt.route))?;
                    writeln!(out, "      lost: {}", alt.reason)?;
                }
            }
            if let (Ok(DataplaneView { route: Some(dp), .. }), Some(sel)) = (dataplane, &lookup.selected)
                && dp.link != sel.next_hop.link
            {
                writeln!(out, "  note: the dataplane's snapshot predates the daemon's current choice")?;
            }
        }
        Err(_) => writeln!(out, "daemon: unavailable (see the error below)")?,
    }
    Ok(())
}

fn describe(r: &RouteInfo) -> String {
    let mut s = format!("{} via {}, metric {}", r.prefix, next_hop(&r.next_hop), metric(r.metric));
    if !r.parts.is_empty() {
        s.push_str(" = ");
        s.push_str(&parts(&r.parts));
    }
    s
}
