//! Adopting the sessions a previous run of the daemon left in the key
//! table, when the new run adopts the dataplane that still uses them.
//!
//! The dataplane keeps its per-session packet counters for as long as a
//! session (same session id, same key) stays in the table, so republishing
//! an adopted session continues its nonces where they were: no packet is
//! sealed twice under one nonce, and traffic does not stop while every
//! peer shakes hands again. Only sessions made for the running dataplane's
//! epoch are taken (a new dataplane starts its counters at zero, so its
//! sessions must be new). Session ids continue above the largest adopted
//! one, and a fresh run starts them from its start time
//! ([`SessionManager::set_session_id_base`]), so a restarted daemon never
//! hands the dataplane an id it still holds for another key.

use mycelium_common::handshake::{Established, Role};
use mycelium_common::identity::PublicKey;
use mycelium_common::keytable::KeyTableView;
use mycelium_common::time::Timestamp;
use tracing::info;

use super::SessionManager;
use super::session::Session;

impl SessionManager {
    /// Session ids start at `base` at least (the daemon passes its start
    /// time in microseconds).
    pub fn set_session_id_base(&mut self, base: u64) {
        self.next_session_id = self.next_session_id.max(base);
    }

    /// Takes over the current sessions of `table` that were made for the
    /// dataplane epoch `epoch`, as if just established there; returns how
    /// many. A session is adopted whole (its send and receive halves share
    /// a session id) or not at all. The adopted side rekeys as a responder
    /// would (the midpoint of the session's life), so it never races the
    /// peer's scheduled rekey.
    pub fn import(&mut self, now: Timestamp, epoch: u64, table: &KeyTableView<'_>) -> usize {
        let mut adopted = 0;
        for send in table.send_sessions() {
            let session_id = send.session_id.to_native();
            if send.dataplane_epoch.to_native() != epoch || session_id == 0 {
                continue;
            }
            let Some(receive) = table
                .receive_sessions()
                .iter()
                .find(|r| r.session_id.to_native() == session_id && r.dataplane_epoch.to_native() == epoch)
            else {
                continue;
            };
            let peer = PublicKey::from_bytes(send.peer_key);
            if peer == self.local_key || peer.address().octets() != send.peer || self.peers.contains_key(&peer) {
                continue;
            }
            let local_index = receive.key_id.to_native();
            if self.indexes.contains_key(&local_index) {
                continue;
            }
            let established = Established {
                role: Role::Responder,
                peer,
                local_index,
                remote_index: send.key_id.to_native(),
                send: mycelium_common::crypto::SessionKey::from_bytes(send.key),
                receive: mycelium_common::crypto::SessionKey::from_bytes(receive.key),
            };
            // The key table says when the session is rejected; it was made
            // `reject_after` before that.
            let reject_ns = u64::try_from(self.config.reject_after.as_nanos()).unwrap_or(u64::MAX);
            let created = send.expires_at_ns.to_native().saturating_sub(reject_ns).min(now.as_nanos());
            let session = Session::new(established, session_id, Timestamp::from_nanos(created));
            self.indexes.insert(local_index, peer);
            self.peers.entry(peer).or_default().current = Some(session);
            self.next_session_id = self.next_session_id.max(session_id + 1);
            adopted += 1;
        }
        if adopted > 0 {
            info!(adopted, epoch, "adopted the end-to-end sessions of the previous run");
            self.epoch = epoch;
            self.changed = true;
        }
        adopted
    }
}
