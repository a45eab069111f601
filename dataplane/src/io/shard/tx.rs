//! Outputs: the engine's verdicts into send and write entries, punts, and injected datagrams.

use super::*;

impl<E: Engine> Shard<E> {
    /// The bytes of an output, if it names a segment of a buffer of the current batch and fits in it.
    pub(super) fn output_bytes(&self, e: &TxEntry) -> Option<*mut u8> {
        let (pool, bid) = split_id(e.id);
        let (base, size) = match pool {
            POOL_UDP if bid < self.udp_pool.count() => (self.udp_pool.buf_ptr(bid), self.udp_pool.buf_size()),
            POOL_TUN => {
                let p = self.tun_pool.as_ref().filter(|p| bid < p.count())?;
                (p.buf_ptr(bid), p.buf_size())
            }
            _ => return None,
        };
        let state = *self.states[pool].get(usize::from(bid))?;
        let (offset, cap) = self.geo[pool].get(usize::from(bid))?.sub(seg_of(e.id))?;
        let end = (e.start as usize).checked_add(e.len as usize)?;
        (state == IN_BATCH && end <= cap && offset + cap <= size).then(|| {
            // Safety: offset + cap <= size and start + len <= cap, so the pointer stays inside buffer `bid`.
            unsafe { base.add(offset + e.start as usize) }
        })
    }

    /// Records that `id`'s segment got its output; `false` if it already had one.
    pub(super) fn claim(&mut self, id: PacketId) -> bool {
        let ((pool, bid), seg) = (split_id(id), seg_of(id));
        let Some(bits) = self.emitted.get_mut(pool).and_then(|v| v.get_mut(usize::from(bid))) else { return false };
        let (word, bit) = (seg / 64, 1u64 << (seg % 64));
        let fresh = bits[word] & bit == 0;
        bits[word] |= bit;
        fresh
    }

    /// Whether `id`'s segment already got its output (or names no buffer).
    pub(super) fn claimed(&self, id: PacketId) -> bool {
        let ((pool, bid), seg) = (split_id(id), seg_of(id));
        let Some(bits) = self.emitted.get(pool).and_then(|v| v.get(usize::from(bid))) else { return true };
        bits[seg / 64] & (1u64 << (seg % 64)) != 0
    }

    /// Sets how buffer `bid` of `pool` is cut into batch entries; none has an output yet.
    pub(super) fn set_geometry(&mut self, pool: usize, bid: u16, geo: Geometry) {
        self.geo[pool][usize::from(bid)] = geo;
        self.emitted[pool][usize::from(bid)] = [0; 4];
    }

    pub(super) fn emit_outputs(&mut self, now: Timestamp) {
        let out = std::mem::replace(&mut self.out, TxQueues::with_capacity(0));
        let entries = out.entries();
        let mut k = 0;
        while k < entries.len() {
            let e = entries[k];
            let Some(ptr) = self.output_bytes(&e).filter(|_| self.claim(e.id)) else {
                self.tally.drops[DropReason::InvalidOutput as usize] += 1;
                k += 1;
                continue;
            };
            k += match e.dest {
                TxDest::Udp(to) => self.emit_udp(&entries[k..], ptr, to),
                TxDest::Tun if self.tun.is_some() => self.emit_tun(&entries[k..], ptr),
                TxDest::Tun => {
                    self.tally.drops[DropReason::NoTun as usize] += 1;
                    1
                }
                TxDest::Punt(kind) => {
                    self.punt_output(now, &e, ptr, kind);
                    1
                }
            };
        }
        for (sum, n) in self.tally.drops.iter_mut().zip(out.drops()) {
            *sum += n;
        }
        self.out = out;
        self.out.clear();
    }

    fn punt_output(&mut self, now: Timestamp, e: &TxEntry, ptr: *mut u8, kind: crate::batch::PuntKind) {
        let (pool, bid) = split_id(e.id);
        let from = if pool == POOL_UDP { self.udp_peers[usize::from(bid)] } else { None };
        // Safety: `output_bytes` checked that the range lies in a buffer of this batch,
        // which nothing else touches until `recycle_batches`.
        let payload = unsafe { std::slice::from_raw_parts(ptr, e.len as usize) };
        // While no daemon listens, do not pay a failing syscall per packet: retry later.
        let punt = self.punt.as_ref().filter(|_| now >= self.punt_retry_at);
        match punt.map(|p| p.send(kind, from, payload)) {
            Some(Ok(())) => self.tally.punted += 1,
            Some(Err(PuntSendError::Full)) => self.tally.drops[DropReason::PuntFull as usize] += 1,
            Some(Err(PuntSendError::Unavailable)) => {
                self.punt_retry_at = now + PUNT_RETRY;
                self.tally.drops[DropReason::PuntUnavailable as usize] += 1;
            }
            None => self.tally.drops[DropReason::PuntUnavailable as usize] += 1,
        }
    }

    /// Queues a send of `len` bytes at `ptr` (inside buffer `id`) to `to`, cut into
    /// `segment`-byte datagrams by the kernel when `segment` is not 0; `packets` is how many
    /// datagrams that makes. Returns whether it was queued; if not, the drops are counted.
    pub(super) fn queue_udp(
        &mut self,
        id: PacketId,
        ptr: *mut u8,
        len: usize,
        to: SocketAddr,
        segment: u16,
        packets: usize,
    ) -> bool {
        let Some(index) = self.free_slots.pop() else {
            self.tally.drops[DropReason::TxBusy as usize] += packets as u64;
            return false;
        };
        let slot = &mut self.slots[index as usize];
        slot.id = id;
        slot.packets = packets as u32;
        slot.vnet_len = 0;
        slot.gso = segment != 0;
        slot.addr = to_sockaddr_in6(to);
        slot.iovs[0] = libc::iovec { iov_base: ptr.cast(), iov_len: len };
        slot.msg.msg_name = (&mut slot.addr as *mut libc::sockaddr_in6).cast();
        slot.msg.msg_namelen = NAME_LEN as libc::socklen_t;
        slot.msg.msg_iov = slot.iovs.as_mut_ptr();
        slot.msg.msg_iovlen = 1;
        if segment != 0 {
            super::super::sys::emit_segment_cmsg(&mut slot.cmsg.0, segment);
            slot.msg.msg_control = slot.cmsg.0.as_mut_ptr().cast();
            slot.msg.msg_controllen = slot.cmsg.0.len();
        } else {
            slot.msg.msg_control = std::ptr::null_mut();
            slot.msg.msg_controllen = 0;
        }
        let entry =
            opcode::SendMsg::new(Fd(self.udp.as_raw_fd()), &slot.msg).build().user_data(user_data(OP_SEND, index));
        self.submit_slot(index, id, &entry)
    }

    /// Queues a TUN write of `parts` (pointer, length) from buffer `id`: with `vnet`, a
    /// vnet header first and every part after the first without its first `skip` bytes
    /// (one super-packet); without, the single part as is.
    pub(super) fn queue_tun(
        &mut self,
        id: PacketId,
        vnet: Option<&crate::offload::vnet::VnetHeader>,
        parts: &[(*mut u8, usize)],
        skip: usize,
    ) -> bool {
        let Some(index) = self.free_slots.pop() else {
            self.tally.drops[DropReason::TxBusy as usize] += parts.len() as u64;
            return false;
        };
        let fd = Fd(self.tun.as_ref().map_or(-1, |t| t.as_raw_fd()));
        let slot = &mut self.slots[index as usize];
        slot.id = id;
        slot.packets = parts.len() as u32;
        slot.gso = false;
        let entry = match vnet {
            None => {
                slot.vnet_len = 0;
                let (ptr, len) = parts[0];
                opcode::Write::new(fd, ptr, len as u32).build().user_data(user_data(OP_TUN_WRITE, index))
            }
            Some(v) => {
                v.emit(&mut slot.vnet);
                slot.vnet_len = slot.vnet.len() as u32;
                slot.iovs[0] = libc::iovec { iov_base: slot.vnet.as_mut_ptr().cast(), iov_len: slot.vnet.len() };
                let mut n = 1;
                for (i, &(ptr, len)) in parts.iter().take(MAX_RUN).enumerate() {
                    let cut = if i == 0 { 0 } else { skip.min(len) };
                    // Safety: cut <= len, so the pointer stays inside the part.
                    slot.iovs[n] = libc::iovec { iov_base: unsafe { ptr.add(cut) }.cast(), iov_len: len - cut };
                    n += 1;
                }
                opcode::Writev::new(fd, slot.iovs.as_ptr(), n as u32).build().user_data(user_data(OP_TUN_WRITE, index))
            }
        };
        self.submit_slot(index, id, &entry)
    }

    /// Pushes a slot's entry; on success the buffer has one more operation in flight.
    fn submit_slot(&mut self, index: u32, id: PacketId, entry: &squeue::Entry) -> bool {
        if !self.push_sqe(entry) {
            let packets = u64::from(self.slots[index as usize].packets);
            self.free_slots.push(index);
            self.tally.drops[DropReason::TxBusy as usize] += packets;
            return false;
        }
        let (pool, bid) = split_id(id);
        if let Some(n) = self.inflight.get_mut(pool).and_then(|v| v.get_mut(usize::from(bid))) {
            *n += 1;
        }
        true
    }

    /// Pushes one entry, flushing the submission queue to the kernel if it is full.
    pub(super) fn push_sqe(&mut self, entry: &squeue::Entry) -> bool {
        for _ in 0..3 {
            // Safety: every pointer in the entries this loop builds (msghdr, iovec, address,
            // buffers) refers to memory owned by the shard that stays put and untouched until
            // the entry's completion is reaped (send slots are boxed, buffers are marked in flight).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return true;
            }
            if let Err(e) = self.ring.submit() {
                self.log_error("submit", e.raw_os_error().unwrap_or(0));
            }
        }
        false
    }

    /// Sends the datagrams the control daemon queued on the punt socket.
    pub(super) fn inject(&mut self) {
        self.inject_pending = false;
        let Some(punt) = self.punt.take() else { return };
        self.inject_pending = self.inject_from(&punt);
        self.punt = Some(punt);
    }

    /// Drains up to [`MAX_INJECTS_PER_BATCH`] messages; returns whether more may be waiting.
    pub(super) fn inject_from(&mut self, punt: &PuntSocket) -> bool {
        for _ in 0..MAX_INJECTS_PER_BATCH {
            let Some(bid) = self.inject_free.pop() else {
                // No buffer free: take the message off the queue anyway, and count it.
                let mut scratch = [0u8; 1];
                match punt.recv(&mut scratch) {
                    Ok(Some(_)) => self.tally.drops[DropReason::TxBusy as usize] += 1,
                    _ => return false,
                }
                continue;
            };
            // Safety: inject buffer `bid` is on the free list, so nothing else uses it, and the
            // offset stays inside the slab.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(
                    self.inject_slab.as_ptr().add(usize::from(bid) * INJECT_BUF_SIZE),
                    INJECT_BUF_SIZE,
                )
            };
            let n = match punt.recv(buf) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    self.inject_free.push(bid);
                    return false;
                }
                Err(e) => {
                    self.inject_free.push(bid);
                    self.log_error("punt receive", e.raw_os_error().unwrap_or(0));
                    return false;
                }
            };
            let to = match decode_header(&buf[..n.min(INJECT_BUF_SIZE)]) {
                Some((KIND_INJECT, to, _)) if n <= INJECT_BUF_SIZE && n > PUNT_HEADER_LEN => to,
                _ => {
                    self.inject_free.push(bid);
                    self.tally.drops[DropReason::InjectMalformed as usize] += 1;
                    continue;
                }
            };
            let ptr = buf[PUNT_HEADER_LEN..].as_mut_ptr();
            if self.queue_udp(packet_id(POOL_INJECT, bid), ptr, n - PUNT_HEADER_LEN, to, 0, 1) {
                self.tally.injected += 1;
            } else {
                self.inject_free.push(bid);
            }
        }
        true
    }
}
