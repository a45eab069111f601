//! A user-space link emulator (this kernel has no netem): a UDP relay
//! placed on a link between two namespaces that adds delay, jitter, loss
//! (random or Gilbert-Elliott bursts), a rate limit with a bounded queue,
//! and up/down, per direction; seeded and reproducible, and changeable
//! while it runs.
//!
//! - [`impairment`]: the sans-IO engine, one per direction:
//!   `handle_datagram(now, len) -> Verdict`.
//! - [`settings`]: flags in human units and control-socket JSON lines.
//! - [`relay`]: the shell: two UDP sockets, one thread per direction,
//!   `recvmmsg`/`sendmmsg` batches, a FIFO of scheduled deliveries.
//! - [`control`]: the Unix control socket (one JSON line in, one out).
//!
//! ```text
//! side A peer  <->  [listen-a | relay | listen-b]  <->  side B peer
//!        datagrams from A's peer leave through listen-b to B's peer
//! ```

pub mod control;
pub mod impairment;
pub mod relay;
pub mod settings;
mod sys;

pub use impairment::{Counters, Direction, DropReason, Impairment, Verdict};
pub use relay::{Relay, RelayConfig};
pub use settings::{SettingsError, Update};
