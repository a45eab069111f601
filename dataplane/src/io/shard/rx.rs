//! Reaping: completions into batches, finished sends back to their pools, receives re-armed.

use super::*;

impl<E: Engine> Shard<E> {
    /// Moves every available completion into the batches; returns how many there were.
    pub(super) fn reap(&mut self) -> usize {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(self.ring.completion().take(CQ_ENTRIES as usize).map(|c| (c.user_data(), c.result(), c.flags())));
        for &(ud, res, flags) in &cqes {
            match ud >> 32 {
                OP_UDP_RECV => self.on_udp_recv(res, flags),
                OP_TUN_READ => self.on_tun_read(res, flags),
                OP_SEND | OP_TUN_WRITE => self.on_sent(ud, res),
                OP_PUNT_POLL => {
                    self.inject_pending = true;
                    if !cqueue::more(flags) {
                        self.punt_armed = false;
                    }
                }
                _ => {}
            }
        }
        let n = cqes.len();
        self.cqes = cqes;
        n
    }

    pub(super) fn on_udp_recv(&mut self, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.udp_armed = false;
        }
        let bid = cqueue::buffer_select(flags);
        if res < 0 {
            match -res {
                libc::ENOBUFS => self.tally.buffers_exhausted += 1,
                libc::ECANCELED => {}
                e => self.log_error("UDP receive", e),
            }
            if let Some(bid) = bid {
                self.give_back(packet_id(POOL_UDP, bid));
            }
            return;
        }
        let Some(bid) = bid.filter(|b| *b < self.udp_pool.count()) else { return };
        let id = packet_id(POOL_UDP, bid);
        self.states[POOL_UDP][usize::from(bid)] = IN_BATCH;
        let base = self.udp_pool.buf_ptr(bid);
        let size = self.udp_pool.buf_size();
        let len = (res as usize).min(size);
        // Safety: the kernel handed buffer `bid` to us with this completion and wrote `len` bytes
        // of it; nothing else accesses it until we give it back.
        let bytes = unsafe { std::slice::from_raw_parts(base, len) };
        let parsed = RecvMsgOut::parse(bytes, &self.recv_msg).ok().map(|m| {
            (
                m.is_payload_truncated(),
                from_sockaddr_bytes(m.name_data()),
                m.payload_data().as_ptr(),
                m.payload_data().len(),
                super::super::sys::gro_segment_size(m.control_data()),
            )
        });
        let Some((truncated, peer, payload, plen, gro)) = parsed else {
            self.tally.drops[DropReason::Malformed as usize] += 1;
            self.give_back(id);
            return;
        };
        if truncated {
            self.tally.drops[DropReason::Truncated as usize] += 1;
            self.give_back(id);
            return;
        }
        self.udp_peers[usize::from(bid)] = peer;
        let start = payload as usize - base as usize;
        if let Some(stride) = gro.filter(|s| *s < plen) {
            return self.split_gro(bid, start, plen, stride, peer);
        }
        self.tally.udp_rx.0 += 1;
        self.tally.udp_rx.1 += plen as u64;
        self.set_geometry(POOL_UDP, bid, Geometry::whole(size));
        // Safety: buffer `bid` is ours (see above) until `recycle_batches` or its send completes,
        // and no other batch entry uses it.
        if !unsafe { self.udp_batch.push(base, size, start, plen, peer, id) } {
            self.tally.drops[DropReason::TxQueueFull as usize] += 1;
            self.give_back(id);
        }
    }

    pub(super) fn on_tun_read(&mut self, res: i32, flags: u32) {
        match &mut self.tun_reads {
            TunReads::Multishot { armed, .. } if !cqueue::more(flags) => *armed = false,
            TunReads::Single { in_flight } => *in_flight = in_flight.saturating_sub(1),
            _ => {}
        }
        let bid = cqueue::buffer_select(flags);
        if res <= 0 {
            match -res {
                libc::ENOBUFS => self.tally.buffers_exhausted += 1,
                libc::ECANCELED | libc::EAGAIN | 0 => {}
                libc::EINVAL | libc::EOPNOTSUPP | libc::EBADFD
                    if matches!(self.tun_reads, TunReads::Multishot { worked: false, .. }) =>
                {
                    info!(
                        shard = self.index,
                        error = -res,
                        "multishot read refused on the TUN; using {TUN_SINGLE_READS} reads in flight"
                    );
                    self.tun_reads = TunReads::Single { in_flight: 0 };
                }
                e => self.log_error("TUN read", e),
            }
            if let Some(bid) = bid {
                self.give_back(packet_id(POOL_TUN, bid));
            }
            return;
        }
        if let TunReads::Multishot { worked, .. } = &mut self.tun_reads {
            *worked = true;
        }
        let Some(pool) = &self.tun_pool else { return };
        let Some(bid) = bid.filter(|b| *b < pool.count()) else { return };
        let id = packet_id(POOL_TUN, bid);
        self.states[POOL_TUN][usize::from(bid)] = IN_BATCH;
        let len = res as usize;
        let (base, size, start) = (pool.buf_ptr(bid), pool.buf_size(), pool.data_offset());
        if self.offload.tun.vnet_hdr {
            return self.read_vnet(bid, base, size, start, len);
        }
        self.tally.tun_rx.0 += 1;
        self.tally.tun_rx.1 += len as u64;
        self.set_geometry(POOL_TUN, bid, Geometry::whole(size));
        // Safety: the kernel handed buffer `bid` to us with this completion; it is ours until
        // `recycle_batches` or its send completes, and no other batch entry uses it.
        if !unsafe { self.tun_batch.push(base, size, start, len, None, id) } {
            self.tally.drops[DropReason::Truncated as usize] += 1;
            self.give_back(id);
        }
    }

    pub(super) fn on_sent(&mut self, ud: u64, res: i32) {
        let index = ud as u32 as usize;
        let Some(slot) = self.slots.get(index) else { return };
        let (id, packets, vnet_len, gso) = (slot.id, u64::from(slot.packets), u64::from(slot.vnet_len), slot.gso);
        let to_tun = ud >> 32 == OP_TUN_WRITE;
        if res < 0 {
            let reason = if to_tun { DropReason::TunWriteFailed } else { DropReason::SendFailed };
            self.tally.drops[reason as usize] += packets;
            if gso && self.gso_on && matches!(-res, libc::EIO | libc::EINVAL | libc::EOPNOTSUPP) {
                // The route's device cannot take GSO (no checksum offload, say): segment ourselves.
                self.gso_on = false;
                warn!(
                    shard = self.index,
                    errno = -res,
                    "UDP GSO send refused; sending datagram by datagram from now on"
                );
            } else if -res != libc::ECANCELED {
                self.log_error(if to_tun { "TUN write" } else { "UDP send" }, -res);
            }
        } else {
            let t = if to_tun { &mut self.tally.tun_tx } else { &mut self.tally.udp_tx };
            t.0 += packets;
            t.1 += (res as u64).saturating_sub(vnet_len);
        }
        self.free_slots.push(index as u32);
        self.release(id);
    }

    /// One send or write of buffer `id` is done: the buffer goes back once none is left
    /// and it is out of the batch.
    pub(super) fn release(&mut self, id: PacketId) {
        let (pool, bid) = split_id(id);
        if pool == POOL_INJECT {
            return self.give_back(id);
        }
        let Some(n) = self.inflight.get_mut(pool).and_then(|v| v.get_mut(usize::from(bid))) else { return };
        *n = n.saturating_sub(1);
        if *n == 0 && self.states[pool][usize::from(bid)] == IN_FLIGHT {
            self.give_back(id);
        }
    }

    /// Returns a buffer to where it comes from (its ring, or the inject free list).
    pub(super) fn give_back(&mut self, id: PacketId) {
        let (pool, bid) = split_id(id);
        match pool {
            POOL_UDP if bid < self.udp_pool.count() => {
                self.states[POOL_UDP][usize::from(bid)] = IN_KERNEL;
                self.udp_pool.give_back(bid);
            }
            POOL_TUN => {
                if let Some(p) = self.tun_pool.as_mut().filter(|p| bid < p.count()) {
                    self.states[POOL_TUN][usize::from(bid)] = IN_KERNEL;
                    p.give_back(bid);
                }
            }
            POOL_INJECT if bid < INJECT_BUFFERS => {
                self.states[POOL_INJECT][usize::from(bid)] = IN_BATCH;
                self.inject_free.push(bid);
            }
            _ => {}
        }
    }

    /// Gives back every buffer of the batches that got no output, and empties them.
    pub(super) fn recycle_batches(&mut self) {
        for pool in [POOL_UDP, POOL_TUN] {
            let batch = if pool == POOL_UDP { &mut self.udp_batch } else { &mut self.tun_batch };
            for id in batch.ids() {
                let (_, bid) = split_id(id);
                if self.states[pool][usize::from(bid)] != IN_BATCH {
                    continue;
                }
                if self.inflight[pool][usize::from(bid)] > 0 {
                    self.states[pool][usize::from(bid)] = IN_FLIGHT;
                    continue;
                }
                self.states[pool][usize::from(bid)] = IN_KERNEL;
                match pool {
                    POOL_UDP => self.udp_pool.give_back(bid),
                    _ => {
                        if let Some(p) = &mut self.tun_pool {
                            p.give_back(bid);
                        }
                    }
                }
            }
            batch.clear();
        }
    }

    /// Re-arms the multishot operations that ended.
    pub(super) fn rearm(&mut self) {
        if !self.udp_armed {
            let e = opcode::RecvMsgMulti::new(Fd(self.udp.as_raw_fd()), &*self.recv_msg, self.udp_pool.bgid())
                .build()
                .user_data(user_data(OP_UDP_RECV, 0));
            self.udp_armed = self.push_sqe(&e);
        }
        if let (Some(tun), Some(pool)) = (&self.tun, &self.tun_pool) {
            let (fd, bgid, len) = (tun.as_raw_fd(), pool.bgid(), (pool.buf_size() - pool.data_offset()) as u32);
            match self.tun_reads {
                TunReads::Multishot { armed: false, worked } => {
                    let e = opcode::ReadMulti::new(Fd(fd), 0, bgid).build().user_data(user_data(OP_TUN_READ, 0));
                    let armed = self.push_sqe(&e);
                    self.tun_reads = TunReads::Multishot { armed, worked };
                }
                TunReads::Single { mut in_flight } => {
                    while in_flight < TUN_SINGLE_READS {
                        let e = opcode::Read::new(Fd(fd), std::ptr::null_mut(), len)
                            .buf_group(bgid)
                            .build()
                            .flags(squeue::Flags::BUFFER_SELECT)
                            .user_data(user_data(OP_TUN_READ, 0));
                        if !self.push_sqe(&e) {
                            break;
                        }
                        in_flight += 1;
                    }
                    self.tun_reads = TunReads::Single { in_flight };
                }
                _ => {}
            }
        }
        if let Some(punt) = &self.punt
            && !self.punt_armed
        {
            let e = opcode::PollAdd::new(Fd(punt.raw_fd()), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(user_data(OP_PUNT_POLL, 0));
            self.punt_armed = self.push_sqe(&e);
        }
    }
}
