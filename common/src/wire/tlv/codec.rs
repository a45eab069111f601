//! Byte layout, `parse` and `emit` of each control message's TLV value.
//!
//! A value parser gets exactly the TLV's value bytes (the framing in
//! [`super::framing`] has already checked that they are all there) and
//! refuses a value whose length does not match its layout with
//! [`WireError::BadLength`]. Reserved bytes and unknown flag bits are zero on
//! emit and ignored on parse. All integers are big-endian.

use std::net::{IpAddr, Ipv6Addr};

use super::{
    ControlMessage, GeoPosition, Hello, Ihu, PEER_EXCHANGE_MAX_ENTRIES, PeerEndpoint, PeerExchange, Probe, ProbeReport,
    RouteRequest, SeqnoRequest, Update, types,
};
use crate::address::mask;
use crate::identity::PublicKey;
use crate::wire::{WireError, array, read_u16, read_u32, read_u64};

/// Value layouts, offsets from the start of the value.
///
/// ```text
/// Hello (type 4), length 14, or 22 with a position
///  0        1        2        3
/// +--------+--------+--------+--------+
/// | flags  |reserved|      seqno      |   flags: 0x01 unicast, 0x02 position present
/// +--------+--------+--------+--------+
/// |  interval (cs)  |                 |
/// +--------+--------+                 +
/// |       timestamp (us, u64)         |
/// +                 +--------+--------+
/// |                 | latitude e7 (i32, only with flag 0x02)
/// +--------+--------+--------+--------+
/// |                 | longitude e7 (i32, only with flag 0x02)
/// +--------+--------+--------+--------+
/// |                 |
/// +--------+--------+
///
/// Ihu (type 5), length 28            Update (type 8), length 40 + ceil(plen / 8)
/// +--------+--------+--------+--------+   +--------+--------+--------+--------+
/// |     rxcost      |  interval (cs)  |   |  plen  |reserved|  interval (cs)  |
/// +--------+--------+--------+--------+   +--------+--------+--------+--------+
/// |        origin (us, u64)           |   |      seqno      |     metric      |
/// +-----------------------------------+   +--------+--------+--------+--------+
/// |        receive (us, u64)          |   |        router id (32 bytes)       |
/// +-----------------------------------+   +-----------------------------------+
/// |        transmit (us, u64)         |   | prefix: the first ceil(plen/8)    |
/// +-----------------------------------+   | bytes; bits after plen are zero   |
///                                         +-----------------------------------+
/// RouteRequest (type 9), length 2 + ceil(plen / 8)
/// +--------+--------+-------------------+
/// |  plen  |reserved| prefix ...        |   plen 0, no prefix: a full dump
/// +--------+--------+-------------------+
///
/// SeqnoRequest (type 10), length 36 + ceil(plen / 8)
/// +--------+--------+--------+--------+
/// |  plen  |hop cnt |      seqno      |
/// +--------+--------+--------+--------+
/// |        router id (32 bytes)       |
/// +-----------------------------------+
/// | prefix ...                        |
/// +-----------------------------------+
///
/// Probe (type 64), length 16 + padding  ProbeReport (type 65), length 28
/// +--------+--------+--------+--------+   +--------+--------+--------+--------+
/// |          train id (u32)           |   |          train id (u32)           |
/// +--------+--------+--------+--------+   +--------+--------+--------+--------+
/// |      index      |      count      |   |    received     |    reserved     |
/// +--------+--------+--------+--------+   +--------+--------+--------+--------+
/// |        sent (us, u64)             |   |        first (us, u64)            |
/// +-----------------------------------+   +-----------------------------------+
/// | padding: zero bytes, as many as   |   |        last (us, u64)             |
/// | the TLV length says (ignored)     |   +-----------------------------------+
/// +-----------------------------------+   |          bytes (u32)              |
///                                         +-----------------------------------+
///
/// PeerExchange (type 66), length 50 * n, n = 0..=4 entries, each:
/// +--------+--------+--------+--------+
/// |        public key (32 bytes)      |
/// +-----------------------------------+
/// | address (16 bytes; IPv4 as        |
/// | ::ffff:a.b.c.d, read back as IPv4)|
/// +--------+--------+-----------------+
/// |      port       |
/// +--------+--------+
/// ```
mod field {
    pub mod hello {
        pub const FLAGS: usize = 0;
        pub const SEQNO: usize = 2;
        pub const INTERVAL: usize = 4;
        pub const TIMESTAMP: usize = 6;
        pub const LAT: usize = 14;
        pub const LON: usize = 18;
        pub const LEN: usize = 14;
        pub const LEN_WITH_POSITION: usize = 22;
        pub const FLAG_UNICAST: u8 = 0x01;
        pub const FLAG_POSITION: u8 = 0x02;
    }
    pub mod ihu {
        pub const RXCOST: usize = 0;
        pub const INTERVAL: usize = 2;
        pub const ORIGIN: usize = 4;
        pub const RECEIVE: usize = 12;
        pub const TRANSMIT: usize = 20;
        pub const LEN: usize = 28;
    }
    pub mod update {
        pub const PLEN: usize = 0;
        pub const INTERVAL: usize = 2;
        pub const SEQNO: usize = 4;
        pub const METRIC: usize = 6;
        pub const ROUTER_ID: usize = 8;
        pub const PREFIX: usize = 40;
    }
    pub mod route_request {
        pub const PLEN: usize = 0;
        pub const PREFIX: usize = 2;
    }
    pub mod seqno_request {
        pub const PLEN: usize = 0;
        pub const HOP_COUNT: usize = 1;
        pub const SEQNO: usize = 2;
        pub const ROUTER_ID: usize = 4;
        pub const PREFIX: usize = 36;
    }
    pub mod probe {
        pub const TRAIN_ID: usize = 0;
        pub const INDEX: usize = 4;
        pub const COUNT: usize = 6;
        pub const SENT: usize = 8;
        pub const PADDING: usize = 16;
    }
    pub mod probe_report {
        pub const TRAIN_ID: usize = 0;
        pub const RECEIVED: usize = 4;
        pub const FIRST: usize = 8;
        pub const LAST: usize = 16;
        pub const BYTES: usize = 24;
        pub const LEN: usize = 28;
    }
    pub mod peer_exchange {
        pub const KEY: usize = 0;
        pub const ADDRESS: usize = 32;
        pub const PORT: usize = 48;
        pub const ENTRY_LEN: usize = 50;
    }
}

/// Bytes of prefix on the wire for a prefix length: `ceil(plen / 8)`.
const fn prefix_bytes(plen: u8) -> usize {
    (plen as usize).div_ceil(8)
}

/// Reads a prefix of `plen` bits: `value` holds `fixed` bytes, then exactly
/// the prefix bytes.
fn parse_prefix(plen: u8, value: &[u8], fixed: usize) -> Result<[u8; 16], WireError> {
    if plen > 128 {
        return Err(WireError::BadPrefixLength);
    }
    let wire = value.get(fixed..).filter(|p| p.len() == prefix_bytes(plen)).ok_or(WireError::BadLength)?;
    let mut prefix = [0u8; 16];
    prefix[..wire.len()].copy_from_slice(wire);
    if mask(prefix, plen) != prefix {
        return Err(WireError::PrefixHostBits);
    }
    Ok(prefix)
}

/// Refuses a prefix that its receiver would refuse.
fn check_prefix(plen: u8, prefix: &[u8; 16]) -> Result<(), WireError> {
    if plen > 128 {
        Err(WireError::BadPrefixLength)
    } else if mask(*prefix, plen) != *prefix {
        Err(WireError::PrefixHostBits)
    } else {
        Ok(())
    }
}

fn exact(value: &[u8], len: usize) -> Result<(), WireError> {
    if value.len() == len { Ok(()) } else { Err(WireError::BadLength) }
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

impl Hello {
    fn value_len(&self) -> usize {
        if self.position.is_some() { field::hello::LEN_WITH_POSITION } else { field::hello::LEN }
    }

    fn parse_value(value: &[u8]) -> Result<Self, WireError> {
        use field::hello::*;
        let flags = *value.first().ok_or(WireError::BadLength)?;
        let has_position = flags & FLAG_POSITION != 0;
        exact(value, if has_position { LEN_WITH_POSITION } else { LEN })?;
        Ok(Hello {
            unicast: flags & FLAG_UNICAST != 0,
            seqno: read_u16(value, SEQNO),
            interval_cs: read_u16(value, INTERVAL),
            timestamp_us: read_u64(value, TIMESTAMP),
            position: has_position.then(|| GeoPosition {
                lat_e7: i32::from_be_bytes(array(value, LAT)),
                lon_e7: i32::from_be_bytes(array(value, LON)),
            }),
        })
    }

    fn emit_value(&self, out: &mut [u8]) {
        use field::hello::*;
        out.fill(0);
        out[FLAGS] =
            if self.unicast { FLAG_UNICAST } else { 0 } | if self.position.is_some() { FLAG_POSITION } else { 0 };
        put(out, SEQNO, &self.seqno.to_be_bytes());
        put(out, INTERVAL, &self.interval_cs.to_be_bytes());
        put(out, TIMESTAMP, &self.timestamp_us.to_be_bytes());
        if let Some(position) = self.position {
            put(out, LAT, &position.lat_e7.to_be_bytes());
            put(out, LON, &position.lon_e7.to_be_bytes());
        }
    }
}

impl Ihu {
    fn parse_value(value: &[u8]) -> Result<Self, WireError> {
        use field::ihu::*;
        exact(value, LEN)?;
        Ok(Ihu {
            rxcost: read_u16(value, RXCOST),
            interval_cs: read_u16(value, INTERVAL),
            origin_us: read_u64(value, ORIGIN),
            receive_us: read_u64(value, RECEIVE),
            transmit_us: read_u64(value, TRANSMIT),
        })
    }

    fn emit_value(&self, out: &mut [u8]) {
        use field::ihu::*;
        put(out, RXCOST, &self.rxcost.to_be_bytes());
        put(out, INTERVAL, &self.interval_cs.to_be_bytes());
        put(out, ORIGIN, &self.origin_us.to_be_bytes());
        put(out, RECEIVE, &self.receive_us.to_be_bytes());
        put(out, TRANSMIT, &self.transmit_us.to_be_bytes());
    }
}

impl Update {
    fn parse_value(value: &[u8]) -> Result<Self, WireError> {
        use field::update::*;
        let plen = *value.get(PLEN).ok_or(WireError::BadLength)?;
        let prefix = parse_prefix(plen, value, PREFIX)?;
        Ok(Update {
            plen,
            interval_cs: read_u16(value, INTERVAL),
            seqno: read_u16(value, SEQNO),
            metric: read_u16(value, METRIC),
            router_id: PublicKey::from_bytes(array(value, ROUTER_ID)),
            prefix,
        })
    }

    fn emit_value(&self, out: &mut [u8]) {
        use field::update::*;
        out[..PREFIX].fill(0);
        out[PLEN] = self.plen;
        put(out, INTERVAL, &self.interval_cs.to_be_bytes());
        put(out, SEQNO, &self.seqno.to_be_bytes());
        put(out, METRIC, &self.metric.to_be_bytes());
        put(out, ROUTER_ID, self.router_id.as_bytes());
        put(out, PREFIX, &self.prefix[..prefix_bytes(self.plen)]);
    }
}

impl RouteRequest {
    fn parse_value(value: &[u8]) -> Result<Self, WireError> {
        use field::route_request::*;
        let plen = *value.get(PLEN).ok_or(WireError::BadLength)?;
        Ok(RouteRequest { plen, prefix: parse_prefix(plen, value, PREFIX)? })
    }

    fn emit_value(&self, out: &mut [u8]) {
        use field::route_request::*;
        out[..PREFIX].fill(0);
        out[PLEN] = self.plen;
        put(out, PREFIX, &self.prefix[..prefix_bytes(self.plen)]);
    }
}

impl SeqnoRequest {
    fn parse_value(value: &[u8]) -> Result<Self, WireError> {
        use field::seqno_request::*;
        let plen = *value.get(PLEN).ok_or(WireError::BadLength)?;
        let prefix = parse_prefix(plen, value, PREFIX)?;
        Ok(SeqnoRequest {
            plen,
            seqno: read_u16(value, SEQNO),
            hop_count: value[HOP_COUNT],
            router_id: PublicKey::from_bytes(array(value, ROUTER_ID)),
            prefix,
        })
    }

    fn emit_value(&self, out: &mut [u8]) {
        use field::seqno_request::*;
        out[PLEN] = self.plen;
        out[HOP_COUNT] = self.hop_count;
        put(out, SEQNO, &self.seqno.to_be_bytes());
        put(out, ROUTER_ID, self.router_id.as_bytes());
        put(out, PREFIX, &self.prefix[..prefix_bytes(self.plen)]);
    }
}

impl Probe {
    fn parse_value(value: &[u8]) -> Result<Self, WireError> {
        use field::probe::*;
        let padding = value.len().checked_sub(PADDING).ok_or(WireError::BadLength)?;
        Ok(Probe {
            train_id: read_u32(value, TRAIN_ID),
            index: read_u16(value, INDEX),
            count: read_u16(value, COUNT),
            sent_us: read_u64(value, SENT),
            // The value length is a u16, so the padding is below 2^16.
            padding: u16::try_from(padding).map_err(|_| WireError::BadLength)?,
        })
    }

    fn emit_value(&self, out: &mut [u8]) {
        use field::probe::*;
        put(out, TRAIN_ID, &self.train_id.to_be_bytes());
        put(out, INDEX, &self.index.to_be_bytes());
        put(out, COUNT, &self.count.to_be_bytes());
        put(out, SENT, &self.sent_us.to_be_bytes());
        out[PADDING..].fill(0);
    }
}

impl ProbeReport {
    fn parse_value(value: &[u8]) -> Result<Self, WireError> {
        use field::probe_report::*;
        exact(value, LEN)?;
        Ok(ProbeReport {
            train_id: read_u32(value, TRAIN_ID),
            received: read_u16(value, RECEIVED),
            first_us: read_u64(value, FIRST),
            last_us: read_u64(value, LAST),
            bytes: read_u32(value, BYTES),
        })
    }

    fn emit_value(&self, out: &mut [u8]) {
        use field::probe_report::*;
        put(out, TRAIN_ID, &self.train_id.to_be_bytes());
        put(out, RECEIVED, &self.received.to_be_bytes());
        out[RECEIVED + 2..FIRST].fill(0);
        put(out, FIRST, &self.first_us.to_be_bytes());
        put(out, LAST, &self.last_us.to_be_bytes());
        put(out, BYTES, &self.bytes.to_be_bytes());
    }
}

impl PeerExchange {
    fn parse_value(value: &[u8]) -> Result<Self, WireError> {
        use field::peer_exchange::*;
        if !value.len().is_multiple_of(ENTRY_LEN) || value.len() / ENTRY_LEN > PEER_EXCHANGE_MAX_ENTRIES {
            return Err(WireError::BadLength);
        }
        let mut exchange = PeerExchange::new(&[]).ok_or(WireError::BadLength)?;
        for (slot, entry) in exchange.entries.iter_mut().zip(value.chunks_exact(ENTRY_LEN)) {
            let v6 = Ipv6Addr::from(array::<16>(entry, ADDRESS));
            *slot = PeerEndpoint {
                key: PublicKey::from_bytes(array(entry, KEY)),
                ip: v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                port: read_u16(entry, PORT),
            };
        }
        // At most PEER_EXCHANGE_MAX_ENTRIES (checked above), so it fits a u8.
        exchange.len = (value.len() / ENTRY_LEN) as u8;
        Ok(exchange)
    }

    fn value_len(&self) -> usize {
        self.entries().len() * field::peer_exchange::ENTRY_LEN
    }

    fn emit_value(&self, out: &mut [u8]) {
        use field::peer_exchange::*;
        for (entry, out) in self.entries().iter().zip(out.chunks_exact_mut(ENTRY_LEN)) {
            let v6 = match entry.ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            put(out, KEY, entry.key.as_bytes());
            put(out, ADDRESS, &v6.octets());
            put(out, PORT, &entry.port.to_be_bytes());
        }
    }
}

impl ControlMessage {
    /// The TLV type this message is sent as ([`types`]).
    pub const fn tlv_type(&self) -> u8 {
        match self {
            ControlMessage::Hello(_) => types::HELLO,
            ControlMessage::Ihu(_) => types::IHU,
            ControlMessage::Update(_) => types::UPDATE,
            ControlMessage::RouteRequest(_) => types::ROUTE_REQUEST,
            ControlMessage::SeqnoRequest(_) => types::SEQNO_REQUEST,
            ControlMessage::Probe(_) => types::PROBE,
            ControlMessage::ProbeReport(_) => types::PROBE_REPORT,
            ControlMessage::PeerExchange(_) => types::PEER_EXCHANGE,
        }
    }

    /// Length of the TLV value (without the 3-byte TLV header). Prefix
    /// lengths above 128 count as 128 (emit refuses them anyway).
    pub fn value_len(&self) -> usize {
        let prefix = |plen: u8| prefix_bytes(plen.min(128));
        match self {
            ControlMessage::Hello(m) => m.value_len(),
            ControlMessage::Ihu(_) => field::ihu::LEN,
            ControlMessage::Update(m) => field::update::PREFIX + prefix(m.plen),
            ControlMessage::RouteRequest(m) => field::route_request::PREFIX + prefix(m.plen),
            ControlMessage::SeqnoRequest(m) => field::seqno_request::PREFIX + prefix(m.plen),
            ControlMessage::Probe(m) => field::probe::PADDING + usize::from(m.padding),
            ControlMessage::ProbeReport(_) => field::probe_report::LEN,
            ControlMessage::PeerExchange(m) => m.value_len(),
        }
    }

    /// Checks what a receiver would refuse: prefixes, and values too long
    /// for the 16-bit length.
    fn check_emit(&self) -> Result<(), WireError> {
        match self {
            ControlMessage::Update(m) => check_prefix(m.plen, &m.prefix)?,
            ControlMessage::RouteRequest(m) => check_prefix(m.plen, &m.prefix)?,
            ControlMessage::SeqnoRequest(m) => check_prefix(m.plen, &m.prefix)?,
            _ => {}
        }
        if self.value_len() > usize::from(u16::MAX) {
            return Err(WireError::TooLong);
        }
        Ok(())
    }

    /// Parses a value of TLV type `kind`; [`WireError::UnknownType`] for a
    /// type this version does not know.
    pub(super) fn parse_value(kind: u8, value: &[u8]) -> Result<Self, WireError> {
        Ok(match kind {
            types::HELLO => ControlMessage::Hello(Hello::parse_value(value)?),
            types::IHU => ControlMessage::Ihu(Ihu::parse_value(value)?),
            types::UPDATE => ControlMessage::Update(Update::parse_value(value)?),
            types::ROUTE_REQUEST => ControlMessage::RouteRequest(RouteRequest::parse_value(value)?),
            types::SEQNO_REQUEST => ControlMessage::SeqnoRequest(SeqnoRequest::parse_value(value)?),
            types::PROBE => ControlMessage::Probe(Probe::parse_value(value)?),
            types::PROBE_REPORT => ControlMessage::ProbeReport(ProbeReport::parse_value(value)?),
            types::PEER_EXCHANGE => ControlMessage::PeerExchange(PeerExchange::parse_value(value)?),
            _ => return Err(WireError::UnknownType),
        })
    }

    /// Writes the value into `out`, which is exactly `value_len()` long and
    /// has passed `check_emit`.
    pub(super) fn emit_value(&self, out: &mut [u8]) -> Result<(), WireError> {
        self.check_emit()?;
        match self {
            ControlMessage::Hello(m) => m.emit_value(out),
            ControlMessage::Ihu(m) => m.emit_value(out),
            ControlMessage::Update(m) => m.emit_value(out),
            ControlMessage::RouteRequest(m) => m.emit_value(out),
            ControlMessage::SeqnoRequest(m) => m.emit_value(out),
            ControlMessage::Probe(m) => m.emit_value(out),
            ControlMessage::ProbeReport(m) => m.emit_value(out),
            ControlMessage::PeerExchange(m) => m.emit_value(out),
        }
        Ok(())
    }
}
