//! The layer-2 path toward an `l2-dsr` backend, asked of the kernel the way
//! `ip route get` and `ip neigh` ask (rtnetlink): whether the route to the
//! backend has the backend itself as its next hop (no gateway: the balancer
//! can hand it frames with the backend's MAC), and a nudge that makes the
//! kernel resolve (or refresh) the backend's neighbour entry, which is where
//! the data plane's FIB lookup finds the MAC.
//!
//! A plain blocking netlink socket serves: the controller asks once per
//! `l2-dsr` backend on each config change and every few seconds.

use std::{fmt, io, net::IpAddr, time::Duration};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::{
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteType},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use thiserror::Error;

use super::set_receive_timeout;

/// A reply that never comes means a kernel bug; do not hang the daemon.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum L2PathError {
    #[error("cannot open a netlink socket")]
    Socket(#[source] io::Error),
    #[error("asking the kernel for the route to {address}")]
    Route {
        address: IpAddr,
        #[source]
        source: io::Error,
    },
    #[error("asking the kernel to resolve the neighbour {address}")]
    Neighbour {
        address: IpAddr,
        #[source]
        source: io::Error,
    },
    #[error("undecodable netlink reply")]
    Decode(#[source] netlink_packet_core::DecodeError),
}

/// Why a backend cannot be reached by rewriting MACs alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffLink {
    /// The route goes through a gateway: frames would reach the gateway.
    ViaGateway { gateway: IpAddr },
    /// No route at all (unreachable, blackhole, prohibit).
    NoRoute { reason: String },
    /// The address is this host's own.
    Local,
}

impl fmt::Display for OffLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffLink::ViaGateway { gateway } => write!(
                f,
                "the route to it goes through the gateway {gateway}, so it is not on this \
                 host's segment"
            ),
            OffLink::NoRoute { reason } => write!(f, "there is no route to it ({reason})"),
            OffLink::Local => f.write_str("it is an address of this host"),
        }
    }
}

/// What the route toward a backend says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Path {
    /// On-link, out of interface `oif`.
    OnLink {
        oif: u32,
    },
    OffLink(OffLink),
}

/// Netlink questions about backends' layer-2 paths, in the calling thread's
/// network namespace (fixed when opened).
pub struct L2Paths {
    socket: Socket,
    sequence: u32,
}

impl L2Paths {
    pub fn open() -> Result<Self, L2PathError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(L2PathError::Socket)?;
        socket.bind_auto().map_err(L2PathError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(L2PathError::Socket)?;
        set_receive_timeout(&socket, REPLY_TIMEOUT).map_err(L2PathError::Socket)?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    /// The kernel's route toward `address` (`ip route get ADDRESS`).
    pub fn path_to(&mut self, address: IpAddr) -> Result<Path, L2PathError> {
        let mut query = RouteMessage::default();
        query.header.address_family = family(address);
        query.header.destination_prefix_length = if address.is_ipv4() { 32 } else { 128 };
        query
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::from(address)));
        let reply = match self.request(RouteNetlinkMessage::GetRoute(query), 0) {
            Ok(r) => r,
            Err(Failure::Io(e)) if is_unreachable(&e) => {
                return Ok(Path::OffLink(OffLink::NoRoute {
                    reason: e.to_string(),
                }))
            }
            Err(Failure::Io(source)) => return Err(L2PathError::Route { address, source }),
            Err(Failure::Decode(e)) => return Err(L2PathError::Decode(e)),
        };
        let Some(route) = reply else {
            return Ok(Path::OffLink(OffLink::NoRoute {
                reason: "the kernel returned no route".into(),
            }));
        };
        Ok(path_of(&route))
    }

    /// Asks the kernel to resolve `address`'s MAC on interface `oif`, or to
    /// confirm an entry it has (`NTF_USE`: as if a packet were sent to it,
    /// which also keeps the entry from being garbage-collected).
    pub fn resolve(&mut self, address: IpAddr, oif: u32) -> Result<(), L2PathError> {
        let mut n = NeighbourMessage::default();
        n.header.family = family(address);
        n.header.ifindex = oif;
        n.header.flags = NeighbourFlags::Use;
        n.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(
                address,
            )));
        match self.request(
            RouteNetlinkMessage::NewNeighbour(n),
            NLM_F_CREATE | NLM_F_REPLACE,
        ) {
            Ok(_) => Ok(()),
            Err(Failure::Io(source)) => Err(L2PathError::Neighbour { address, source }),
            Err(Failure::Decode(e)) => Err(L2PathError::Decode(e)),
        }
    }

    /// Sends one request; returns the route message of its reply, if any,
    /// once the kernel acknowledged it.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Option<RouteMessage>, Failure> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0).map_err(Failure::Io)?;

        let mut route = None;
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
                    NetlinkPayload::Done(_) => return Ok(route),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(route),
                        Some(_) => return Err(Failure::Io(e.to_io())),
                    },
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) => {
                        route = Some(r);
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

/// What a route the kernel answered says about layer-2 reachability.
fn path_of(route: &RouteMessage) -> Path {
    match route.header.kind {
        RouteType::Unicast => {}
        RouteType::Local => return Path::OffLink(OffLink::Local),
        other => {
            return Path::OffLink(OffLink::NoRoute {
                reason: format!("a route of type {other:?}").to_lowercase(),
            })
        }
    }
    let mut oif = None;
    for a in &route.attributes {
        match a {
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => {
                return Path::OffLink(OffLink::ViaGateway {
                    gateway: IpAddr::V4(*g),
                })
            }
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => {
                return Path::OffLink(OffLink::ViaGateway {
                    gateway: IpAddr::V6(*g),
                })
            }
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    match oif {
        Some(oif) => Path::OnLink { oif },
        None => Path::OffLink(OffLink::NoRoute {
            reason: "the route names no interface".into(),
        }),
    }
}

fn family(address: IpAddr) -> AddressFamily {
    match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The errors `ip route get` reports for a destination without a route.
fn is_unreachable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EINVAL | libc::EACCES)
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn route(kind: RouteType, attributes: Vec<RouteAttribute>) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.kind = kind;
        r.attributes = attributes;
        r
    }

    #[test]
    fn a_route_without_gateway_is_on_link() {
        let r = route(RouteType::Unicast, vec![RouteAttribute::Oif(3)]);
        assert_eq!(path_of(&r), Path::OnLink { oif: 3 });
    }

    #[test]
    fn gateways_local_and_dead_routes_are_off_link() {
        let gw = Ipv4Addr::new(10, 0, 0, 254);
        let r = route(
            RouteType::Unicast,
            vec![
                RouteAttribute::Oif(3),
                RouteAttribute::Gateway(RouteAddress::Inet(gw)),
            ],
        );
        assert_eq!(
            path_of(&r),
            Path::OffLink(OffLink::ViaGateway {
                gateway: IpAddr::V4(gw)
            })
        );
        assert_eq!(
            path_of(&route(RouteType::Local, vec![RouteAttribute::Oif(1)])),
            Path::OffLink(OffLink::Local)
        );
        let Path::OffLink(OffLink::NoRoute { reason }) =
            path_of(&route(RouteType::BlackHole, vec![]))
        else {
            panic!("a blackhole is no route");
        };
        assert!(reason.contains("blackhole"), "{reason}");
        let msg = OffLink::ViaGateway {
            gateway: IpAddr::V4(gw),
        }
        .to_string();
        assert!(msg.contains("gateway 10.0.0.254"), "{msg}");
    }
}
