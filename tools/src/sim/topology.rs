//! Topology builders: lines, a square, random meshes.

use std::collections::BTreeSet;
use std::time::Duration;

use super::link::LinkProps;
use super::rng::Rng;

/// A link between nodes `a` and `b`.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub a: usize,
    pub b: usize,
    pub props: LinkProps,
}

/// Nodes `0..nodes` and the links between them (several links may join
/// the same two nodes).
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub nodes: usize,
    pub links: Vec<LinkSpec>,
}

impl Topology {
    pub fn new(nodes: usize) -> Self {
        Topology { nodes, links: Vec::new() }
    }

    /// Adds a link and returns its index.
    pub fn link(&mut self, a: usize, b: usize, props: LinkProps) -> usize {
        self.links.push(LinkSpec { a, b, props });
        self.links.len() - 1
    }

    /// `0 - 1 - ... - (n-1)`.
    pub fn line(n: usize, props: LinkProps) -> Self {
        let mut t = Topology::new(n);
        for i in 1..n {
            t.link(i - 1, i, props.clone());
        }
        t
    }

    /// `0 - 1 - 2 - 3 - 0`: links 0 (0-1), 1 (1-2), 2 (2-3), 3 (3-0).
    pub fn square(props: LinkProps) -> Self {
        let mut t = Topology::new(4);
        for i in 0..4 {
            t.link(i, (i + 1) % 4, props.clone());
        }
        t
    }

    /// A connected random mesh of `n` nodes with about `degree` links per
    /// node: a random spanning tree, then random extra links. Link delays
    /// are uniform in 1..=`max_delay_ms` milliseconds.
    pub fn random_mesh(n: usize, degree: usize, max_delay_ms: u64, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut t = Topology::new(n);
        let mut seen = BTreeSet::new();
        let mut add = |t: &mut Topology, rng: &mut Rng, a: usize, b: usize| {
            let key = (a.min(b), a.max(b));
            if a == b || !seen.insert(key) {
                return false;
            }
            let delay = Duration::from_millis(1 + rng.next_u64() % max_delay_ms.max(1));
            t.link(a, b, LinkProps::with_delay(delay));
            true
        };
        for i in 1..n {
            let j = rng.below(i);
            add(&mut t, &mut rng, i, j);
        }
        let target = n * degree / 2;
        let mut attempts = 0;
        while t.links.len() < target && attempts < target * 20 {
            attempts += 1;
            let (a, b) = (rng.below(n), rng.below(n));
            add(&mut t, &mut rng, a, b);
        }
        t
    }

    /// Average number of links per node.
    pub fn average_degree(&self) -> f64 {
        2.0 * self.links.len() as f64 / self.nodes.max(1) as f64
    }
}
