//! The announce routes in the kernel, through rtnetlink: one blackhole host
//! route (`/32`, `/128`) per announced address, protocol `static`, in the
//! routing table xlb owns (`announce.table`).
//!
//! Why these routes: BIRD's `kernel` protocol (with `learn`) and FRR's
//! `ip import-table` pick up routes other programs put in a table, except
//! those of protocol `kernel` and of type `local`; a blackhole needs no
//! interface and is the usual way to say "announce this prefix" (like a
//! static route to Null0). The table is consulted by no `ip rule`, so the
//! routes never forward a packet. Protocol `static` (not `boot`, which is
//! what `ip route add` uses) marks the routes xlb owns: only those are ever
//! listed or removed.
//!
//! A plain blocking netlink socket serves: a change makes a handful of
//! requests, from the controller, which is synchronous anyway.

use std::{collections::BTreeSet, io, net::IpAddr, time::Duration};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::{
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
        RouteType,
    },
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use thiserror::Error;

use crate::netdev::set_receive_timeout;

/// The protocol of xlb's routes (`proto static` in `ip route`).
pub const PROTOCOL: RouteProtocol = RouteProtocol::Static;

/// A reply that never comes means a kernel bug; do not hang the daemon.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum RouteError {
    #[error("cannot open a netlink socket")]
    Socket {
        #[source]
        source: io::Error,
    },
    #[error("{op} the route of {address} in table {table}")]
    Change {
        op: &'static str,
        address: IpAddr,
        table: u32,
        #[source]
        source: io::Error,
    },
    #[error("listing the routes of table {table}")]
    List {
        table: u32,
        #[source]
        source: io::Error,
    },
    #[error("undecodable netlink reply")]
    Decode {
        #[source]
        source: netlink_packet_core::DecodeError,
    },
}

/// xlb's routes in one kernel routing table of the calling thread's
/// network namespace (fixed when the table is opened).
pub struct RouteTable {
    socket: Socket,
    table: u32,
    sequence: u32,
}

impl RouteTable {
    pub fn open(table: u32) -> Result<Self, RouteError> {
        let socket_error = |source| RouteError::Socket { source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(socket_error)?;
        socket.bind_auto().map_err(socket_error)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(socket_error)?;
        // Lets the kernel filter dumps by table (since Linux 4.20); older
        // kernels ignore it and `list` filters by itself.
        let _ = socket.set_netlink_get_strict_chk(true);
        set_receive_timeout(&socket, REPLY_TIMEOUT).map_err(socket_error)?;
        Ok(Self {
            socket,
            table,
            sequence: 0,
        })
    }

    pub fn table(&self) -> u32 {
        self.table
    }

    /// The addresses xlb's routes in the table announce.
    pub fn list(&mut self) -> Result<BTreeSet<IpAddr>, RouteError> {
        let mut out = BTreeSet::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut query = RouteMessage::default();
            query.header.address_family = family;
            query.header.protocol = PROTOCOL;
            query.header.kind = RouteType::BlackHole;
            set_table(&mut query, self.table);
            let table = self.table;
            let replies = match self.request(RouteNetlinkMessage::GetRoute(query), NLM_F_DUMP) {
                Ok(r) => r,
                // A table the family never had a route in does not exist.
                Err(Failure::Io(e)) if e.raw_os_error() == Some(libc::ENOENT) => Vec::new(),
                Err(Failure::Io(source)) => return Err(RouteError::List { table, source }),
                Err(Failure::Decode(source)) => return Err(RouteError::Decode { source }),
            };
            out.extend(replies.iter().filter_map(|r| self.announced_by(r)));
        }
        Ok(out)
    }

    /// Announces `address` (adding a route that is there already is fine).
    pub fn add(&mut self, address: IpAddr) -> Result<(), RouteError> {
        let msg = RouteNetlinkMessage::NewRoute(route(address, self.table));
        self.change("adding", address, msg, NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Withdraws `address` (a route that is not there is fine).
    pub fn remove(&mut self, address: IpAddr) -> Result<(), RouteError> {
        let msg = RouteNetlinkMessage::DelRoute(route(address, self.table));
        match self.change("removing", address, msg, 0) {
            Err(RouteError::Change { source, .. })
                if source.raw_os_error() == Some(libc::ESRCH) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    fn change(
        &mut self,
        op: &'static str,
        address: IpAddr,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), RouteError> {
        let table = self.table;
        self.request(msg, flags).map(drop).map_err(|e| match e {
            Failure::Io(source) => RouteError::Change {
                op,
                address,
                table,
                source,
            },
            Failure::Decode(source) => RouteError::Decode { source },
        })
    }

    /// The address a route of the dump announces, if it is one of xlb's.
    fn announced_by(&self, r: &RouteMessage) -> Option<IpAddr> {
        let h = &r.header;
        let mut table = u32::from(h.table);
        let mut destination = None;
        for a in &r.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(d)) => {
                    destination = Some(IpAddr::V4(*d))
                }
                RouteAttribute::Destination(RouteAddress::Inet6(d)) => {
                    destination = Some(IpAddr::V6(*d))
                }
                _ => {}
            }
        }
        let address = destination?;
        let ours = table == self.table
            && h.protocol == PROTOCOL
            && h.kind == RouteType::BlackHole
            && h.destination_prefix_length == host_prefix(address);
        ours.then_some(address)
    }

    /// Sends one request and collects the route messages of its reply until
    /// the ack (or, for a dump, the end).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteMessage>, Failure> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0).map_err(Failure::Io)?;

        let mut routes = Vec::new();
        loop {
            let (buf, _) = self.socket.recv_from_full().map_err(Failure::Io)?;
            let mut offset = 0;
            while offset < buf.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..])
                    .map_err(Failure::Decode)?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += len.next_multiple_of(4);
                if reply.header.sequence_number != self.sequence {
                    continue; // a late reply to an earlier, timed-out request
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(routes),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(routes),
                        Some(_) => return Err(Failure::Io(e.to_io())),
                    },
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) => {
                        routes.push(r)
                    }
                    _ => {}
                }
            }
        }
    }
}

enum Failure {
    Io(io::Error),
    Decode(netlink_packet_core::DecodeError),
}

/// The route that announces `address` from `table`.
fn route(address: IpAddr, table: u32) -> RouteMessage {
    let mut r = RouteMessage::default();
    r.header.address_family = match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    r.header.destination_prefix_length = host_prefix(address);
    r.header.protocol = PROTOCOL;
    r.header.scope = RouteScope::Universe;
    r.header.kind = RouteType::BlackHole;
    set_table(&mut r, table);
    r.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(address)));
    r
}

/// Tables above 255 only fit the attribute; the header then says "unspec".
fn set_table(r: &mut RouteMessage, table: u32) {
    r.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    r.attributes.push(RouteAttribute::Table(table));
}

fn host_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, Parseable};

    use super::*;

    #[test]
    fn the_route_is_a_blackhole_host_route_of_xlb_in_the_table() {
        for (address, prefix, family) in [
            ("10.200.0.1", 32, AddressFamily::Inet),
            ("fd20::1", 128, AddressFamily::Inet6),
        ] {
            let address: IpAddr = address.parse().unwrap_or_else(|e| panic!("{e}"));
            let r = route(address, 4242);
            assert_eq!(r.header.address_family, family);
            assert_eq!(r.header.destination_prefix_length, prefix);
            assert_eq!(r.header.kind, RouteType::BlackHole);
            assert_eq!(r.header.protocol, RouteProtocol::Static);
            // 4242 does not fit the header's u8: the attribute carries it.
            assert_eq!(r.header.table, 0);
            assert!(r.attributes.contains(&RouteAttribute::Table(4242)));
            // It survives encoding, as the kernel will read it.
            let mut bytes = vec![0; r.buffer_len()];
            r.emit(&mut bytes);
            let back = RouteMessage::parse(bytes.as_slice()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, r);
        }
        assert_eq!(
            route("10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")), 100)
                .header
                .table,
            100
        );
    }
}
