//! Outputs: the engine's verdicts into send and write entries, punts, and injected datagrams.

use super::*;

impl<E: Engine> Shard<E> {
    /// The bytes of an output, if it names a buffer of the current batch and fits in it.
    pub(super) fn output_bytes(&self, e: &TxEntry) -> Option<*mut u8> {
        let (pool, bid) = split_id(e.id);
        let (base, size) = match pool {
            POOL_UDP => (self.udp_pool.buf_ptr(bid % UDP_BUFFERS), self.udp_pool.buf_size()),
            POOL_TUN => {
                let p = self.tun_pool.as_ref()?;
                (p.buf_ptr(bid % TUN_BUFFERS), p.buf_size())
            }
            _ => return None,
        };
        let state = *self.states[pool].get(usize::from(bid))?;
        let end = (e.start as usize).checked_add(e.len as usize)?;
        (state == IN_BATCH && end <= size).then(|| {
            // Safety: start + len <= size, so the pointer stays inside buffer `bid`.
            unsafe { base.add(e.start as usize) }
        })
    }

    pub(super) fn emit_outputs(&mut self, now: Timestamp) {
        let out = std::mem::replace(&mut self.out, TxQueues::with_capacity(0));
        for e in out.entries() {
            let Some(ptr) = self.output_bytes(e) else {
                self.tally.drops[DropReason::InvalidOutput as usize] += 1;
                continue;
            };
            match e.dest {
                TxDest::Udp(to) => {
                    self.queue_send(e.id, ptr, e.len, Some(to));
                }
                TxDest::Tun if self.tun.is_some() => {
                    self.queue_send(e.id, ptr, e.len, None);
                }
                TxDest::Tun => self.tally.drops[DropReason::NoTun as usize] += 1,
                TxDest::Punt(kind) => {
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
            }
        }
        for (sum, n) in self.tally.drops.iter_mut().zip(out.drops()) {
            *sum += n;
        }
        self.out = out;
        self.out.clear();
    }

    /// Queues a send of `len` bytes at `ptr` (inside buffer `id`) to `to`, or a TUN write when
    /// `to` is `None`. Returns whether it was queued; if not, the drop is counted and the buffer
    /// stays where it was.
    pub(super) fn queue_send(&mut self, id: PacketId, ptr: *mut u8, len: u32, to: Option<SocketAddr>) -> bool {
        let Some(index) = self.free_slots.pop() else {
            self.tally.drops[DropReason::TxBusy as usize] += 1;
            return false;
        };
        let slot = &mut self.slots[index as usize];
        slot.id = id;
        let entry = match to {
            Some(to) => {
                slot.addr = to_sockaddr_in6(to);
                slot.iov = libc::iovec { iov_base: ptr.cast(), iov_len: len as usize };
                slot.msg.msg_name = (&mut slot.addr as *mut libc::sockaddr_in6).cast();
                slot.msg.msg_namelen = NAME_LEN as libc::socklen_t;
                slot.msg.msg_iov = &mut slot.iov;
                slot.msg.msg_iovlen = 1;
                opcode::SendMsg::new(Fd(self.udp.as_raw_fd()), &slot.msg).build().user_data(user_data(OP_SEND, index))
            }
            None => {
                let fd = self.tun.as_ref().map_or(-1, |t| t.as_raw_fd());
                opcode::Write::new(Fd(fd), ptr, len).build().user_data(user_data(OP_TUN_WRITE, index))
            }
        };
        if !self.push_sqe(&entry) {
            self.free_slots.push(index);
            self.tally.drops[DropReason::TxBusy as usize] += 1;
            return false;
        }
        let (pool, bid) = split_id(id);
        self.states[pool][usize::from(bid)] = IN_FLIGHT;
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
            if self.queue_send(packet_id(POOL_INJECT, bid), ptr, (n - PUNT_HEADER_LEN) as u32, Some(to)) {
                self.tally.injected += 1;
            } else {
                self.inject_free.push(bid);
            }
        }
        true
    }
}
