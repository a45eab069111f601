//! `mctl graph [--svg FILE]`: the mesh as this node sees it
//! (`GET /api/v1/graph`), as Graphviz DOT on stdout, or rendered to SVG by
//! `dot -Tsvg` when Graphviz is installed.
//!
//! Nodes are labelled with their short key and address (this node drawn
//! doubled); measured links are solid and labelled with class and cost,
//! hops known only from routes are dashed; edges on a selected path are
//! bold (of several links to the first hop, only the one the path uses).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use mycelium_control::api::types::Graph;

use super::table::short_key;
use super::{Global, client::Client, print_json};

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Render to this SVG file with Graphviz's `dot` instead of printing DOT.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

pub fn run(g: &Global, args: &GraphArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let graph: Graph = Client::for_node(g).get("/api/v1/graph", &[])?;
    if g.json {
        return print_json(out, &graph);
    }
    let text = dot(&graph);
    match &args.svg {
        None => out.write_all(text.as_bytes())?,
        Some(path) => {
            render_svg(&text, path)?;
            writeln!(out, "wrote {}", path.display())?;
        }
    }
    Ok(())
}

/// A DOT string literal.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c if c.is_control() => {}
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The graph in Graphviz DOT, deterministic for the same input.
pub fn dot(g: &Graph) -> String {
    // (from, to, link): the first hop names the link it uses.
    let on_path: BTreeSet<(&str, &str, Option<u32>)> = g
        .paths
        .iter()
        .flat_map(|p| {
            p.hops.windows(2).enumerate().filter_map(move |(i, w)| {
                let link = if i == 0 { p.link } else { None };
                Some((w.first()?.as_str(), w.get(1)?.as_str(), link))
            })
        })
        .collect();
    let mut s = String::from("digraph mycelium {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
    for n in &g.nodes {
        let label = format!("{}\n{}", short_key(&n.id), n.address);
        let style = if n.local { ", peripheries=2, style=bold" } else { "" };
        s.push_str(&format!("  {} [label={}{style}];\n", quote(&n.id), quote(&label)));
    }
    for l in &g.links {
        let mut label = Vec::new();
        if let Some(id) = l.link {
            label.push(format!("link {id}"));
        }
        if let Some(class) = &l.class {
            label.push(class.clone());
        }
        label.push(format!("cost {}", l.cost));
        let mut attrs = vec![format!("label={}", quote(&label.join("\n")))];
        match l.state.as_str() {
            "route" => attrs.push("style=dashed".into()),
            "down" => attrs.push("color=red, style=dotted".into()),
            _ => {}
        }
        if on_path.contains(&(l.from.as_str(), l.to.as_str(), l.link)) {
            attrs.push("penwidth=2.5".into());
        }
        s.push_str(&format!("  {} -> {} [{}];\n", quote(&l.from), quote(&l.to), attrs.join(", ")));
    }
    for p in &g.paths {
        s.push_str(&format!("  // path to {} (metric {}): {}\n", p.prefix, p.metric, p.hops.join(" -> ")));
    }
    s.push_str("}\n");
    s
}

fn render_svg(dot_text: &str, path: &PathBuf) -> anyhow::Result<()> {
    let mut child = match Command::new("dot").arg("-Tsvg").arg("-o").arg(path).stdin(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "--svg needs Graphviz's `dot`, which is not installed (e.g. apt-get install graphviz); \
             `mctl graph` without --svg prints the DOT source"
        ),
        Err(e) => return Err(e).context("starting dot"),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot_text.as_bytes()).context("writing to dot")?;
    }
    let status = child.wait().context("waiting for dot")?;
    if !status.success() {
        bail!("dot -Tsvg failed ({status})");
    }
    Ok(())
}
