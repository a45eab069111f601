//! `mctl counters [--shard N]`: the dataplane's per-shard counters, read
//! straight from shared memory (so they work without the daemon), with
//! every drop reason.

use std::io::Write;

use anyhow::bail;
use clap::Args;
use mycelium_control::api::types::{Counters, ShardCounterInfo};
use mycelium_dataplane::engine::counters::DropReason;
use mycelium_dataplane::io::shm::{ShmError, read_all_counters};

use super::table::Table;
use super::{Global, print_json, shm};

#[derive(Debug, Args)]
pub struct CountersArgs {
    /// Only this shard.
    #[arg(long, value_name = "N")]
    pub shard: Option<u32>,
}

pub fn run(g: &Global, args: &CountersArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = shm::dir_path(g);
    let shards = match read_all_counters(&dir) {
        Ok(shards) => shards,
        Err(ShmError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(shm::missing(g, "no such directory").into());
        }
        Err(ShmError::Io { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => {
            bail!(
                "{}: permission denied: run mctl as the user myceliumd runs as (e.g. sudo -u mycelium mctl counters)",
                dir.display()
            );
        }
        Err(e) => return Err(e.into()),
    };
    if shards.is_empty() {
        return Err(shm::missing(g, "no shard counters").into());
    }
    let mut counters = Counters::from_shards(&shards);
    if let Some(n) = args.shard {
        let present: Vec<String> = counters.shards.iter().map(|s| s.shard.to_string()).collect();
        counters.shards.retain(|s| s.shard == n);
        if counters.shards.is_empty() {
            bail!("no shard {n} (shards: {})", present.join(", "));
        }
    }
    if g.json {
        return print_json(out, &counters);
    }
    table(&counters).print(out)?;
    Ok(())
}

/// Reads one counter of a shard.
type Field = fn(&ShardCounterInfo) -> u64;

/// One row per counter, one column per shard, then the total (a single
/// shard has no total column; the total generation is the oldest).
fn table(c: &Counters) -> Table {
    let with_total = c.shards.len() > 1;
    let mut headers = vec!["COUNTER".to_owned()];
    headers.extend(c.shards.iter().map(|s| format!("SHARD {}", s.shard)));
    if with_total {
        headers.push("TOTAL".to_owned());
    }
    let mut t = Table::new(&headers).right(&(1..headers.len()).collect::<Vec<_>>());
    let mut add = |name: String, values: Vec<u64>, total: u64| {
        let mut row = vec![name];
        row.extend(values.iter().map(u64::to_string));
        if with_total {
            row.push(total.to_string());
        }
        t.row(row);
    };
    let sum = |v: &[u64]| v.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let generations: Vec<u64> = c.shards.iter().map(|s| s.snapshot_generation).collect();
    let oldest = generations.iter().copied().min().unwrap_or(0);
    add("snapshot generation".into(), generations, oldest);
    let rows: [(&str, Field); 11] = [
        ("batches", |s| s.batches),
        ("underlay rx packets", |s| s.underlay_rx_packets),
        ("underlay rx bytes", |s| s.underlay_rx_bytes),
        ("underlay tx packets", |s| s.underlay_tx_packets),
        ("underlay tx bytes", |s| s.underlay_tx_bytes),
        ("tun rx packets", |s| s.tun_rx_packets),
        ("tun rx bytes", |s| s.tun_rx_bytes),
        ("tun tx packets", |s| s.tun_tx_packets),
        ("tun tx bytes", |s| s.tun_tx_bytes),
        ("punted", |s| s.punted),
        ("injected", |s| s.injected),
    ];
    for (name, f) in rows {
        let values: Vec<u64> = c.shards.iter().map(f).collect();
        let total = sum(&values);
        add(name.to_owned(), values, total);
    }
    for reason in DropReason::ALL {
        let label = reason.label();
        let values: Vec<u64> = c.shards.iter().map(|s| s.drops.get(label).copied().unwrap_or(0)).collect();
        let total = sum(&values);
        add(format!("drop {label}"), values, total);
    }
    t
}
