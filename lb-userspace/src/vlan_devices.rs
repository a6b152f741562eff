//! The host's VLAN devices, from netlink (rtnetlink). The data plane keeps an
//! encapsulated packet on the VLAN it came in on (`decision::egress`), but the
//! kernel's FIB lookup only names an egress device, not its VLAN: the daemon
//! records every VLAN device in `XLB_VLANS`, at start, on every reload and
//! whenever a link changes ([`LinkWatch`]).

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt};
use lb_common::{VlanDevice, MAX_VLAN_DEVICES};
use rtnetlink::{
    packet_core::NetlinkMessage,
    packet_route::{
        link::{InfoData, InfoKind, InfoVlan, LinkAttribute, LinkInfo, LinkMessage},
        RouteNetlinkMessage,
    },
    sys::SocketAddr,
    MulticastGroup,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum VlanDevicesError {
    #[error("opening a netlink socket")]
    Socket(#[source] std::io::Error),
    #[error("listing the network devices over netlink")]
    Dump(#[source] rtnetlink::Error),
    #[error("starting a runtime for the netlink request")]
    Runtime(#[source] std::io::Error),
}

/// One VLAN device of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanLink {
    /// The device's name, for logs.
    pub name: String,
    pub ifindex: u32,
    pub device: VlanDevice,
}

/// Every VLAN device of the calling thread's network namespace.
pub async fn read() -> Result<Vec<VlanLink>, VlanDevicesError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(VlanDevicesError::Socket)?;
    let task = tokio::spawn(connection);
    let mut links = handle.link().get().execute();
    let mut found = Vec::new();
    let dumped = async {
        while let Some(msg) = links.try_next().await? {
            found.extend(vlan_of(&msg));
        }
        Ok(())
    }
    .await;
    task.abort();
    dumped.map_err(VlanDevicesError::Dump)?;
    Ok(found)
}

/// [`read`] for synchronous callers (tests, tools): runs on a runtime of the
/// calling thread, so the socket is opened in that thread's namespace.
pub fn read_blocking() -> Result<Vec<VlanLink>, VlanDevicesError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(VlanDevicesError::Runtime)?
        .block_on(read())
}

/// The `XLB_VLANS` content for `links`: at most [`MAX_VLAN_DEVICES`] of
/// them (the lowest ifindexes); the second value counts those left out.
pub fn by_ifindex(links: &[VlanLink]) -> (BTreeMap<u32, VlanDevice>, usize) {
    let all: BTreeMap<u32, VlanDevice> = links.iter().map(|l| (l.ifindex, l.device)).collect();
    let total = all.len();
    let kept: BTreeMap<u32, VlanDevice> = all.into_iter().take(MAX_VLAN_DEVICES as usize).collect();
    let left_out = total - kept.len();
    (kept, left_out)
}

/// The VLAN device a link message describes, if it is one. A VLAN device
/// whose parent is in another namespace (`IFLA_LINK_NETNSID`) gets parent 0:
/// its parent's ifindex means nothing here, so it matches no ingress.
fn vlan_of(msg: &LinkMessage) -> Option<VlanLink> {
    let (mut is_vlan, mut id, mut tpid) = (false, None, lb_common::TPID_8021Q);
    let (mut name, mut parent, mut foreign_parent) = (String::new(), 0, false);
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Link(p) => parent = *p,
            LinkAttribute::LinkNetNsId(_) => foreign_parent = true,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::Vlan) => is_vlan = true,
                        LinkInfo::Data(InfoData::Vlan(vlan)) => {
                            for v in vlan {
                                match v {
                                    InfoVlan::Id(i) => id = Some(*i),
                                    InfoVlan::Protocol(p) => tpid = u16::from(*p),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let id = id.filter(|_| is_vlan)?;
    if foreign_parent {
        parent = 0;
    }
    Some(VlanLink {
        name,
        ifindex: msg.header.index,
        device: VlanDevice::new(parent, id, tpid),
    })
}

/// What rtnetlink's multicast connection delivers.
type Notifications =
    futures_util::stream::BoxStream<'static, (NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// Link notifications (`RTNLGRP_LINK`): devices added, removed or changed.
pub struct LinkWatch {
    messages: Notifications,
    connection: tokio::task::JoinHandle<()>,
}

impl LinkWatch {
    /// Subscribes to link changes of the calling thread's namespace (must run
    /// inside a tokio runtime).
    pub fn start() -> Result<Self, VlanDevicesError> {
        let (connection, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
                .map_err(VlanDevicesError::Socket)?;
        Ok(Self {
            messages: messages.boxed(),
            connection: tokio::spawn(connection),
        })
    }

    /// Waits for the next link change; a burst (a device and its VLANs
    /// created together) counts as one. `None` once the socket is gone.
    pub async fn changed(&mut self) -> Option<()> {
        self.messages.next().await?;
        // Let the rest of a burst arrive, then take it all at once.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        while let Some(Some(_)) = futures_util::FutureExt::now_or_never(self.messages.next()) {}
        Some(())
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_route::link::VlanProtocol;

    use super::*;

    fn link(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes = attributes;
        m
    }

    fn vlan_info(id: u16, proto: VlanProtocol) -> LinkAttribute {
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vlan),
            LinkInfo::Data(InfoData::Vlan(vec![
                InfoVlan::Id(id),
                InfoVlan::Protocol(proto),
            ])),
        ])
    }

    #[test]
    fn vlan_devices_are_recognised_with_parent_id_and_protocol() {
        let m = link(
            9,
            vec![
                LinkAttribute::IfName("eth0.100".into()),
                LinkAttribute::Link(2),
                vlan_info(100, VlanProtocol::Ieee8021Q),
            ],
        );
        assert_eq!(
            vlan_of(&m),
            Some(VlanLink {
                name: "eth0.100".into(),
                ifindex: 9,
                device: VlanDevice::new(2, 100, 0x8100),
            })
        );
        let ad = link(
            10,
            vec![
                LinkAttribute::Link(2),
                vlan_info(7, VlanProtocol::Ieee8021Ad),
            ],
        );
        assert_eq!(vlan_of(&ad).map(|l| l.device.tpid()), Some(0x88a8));
    }

    /// One rtattr: length, type, payload, padded to 4 bytes.
    fn rtattr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        while !a.len().is_multiple_of(4) {
            a.push(0);
        }
        a
    }

    /// An RTM_NEWLINK payload as the kernel writes it for `ip link add link
    /// <2> name eth0.100 type vlan protocol 802.1ad id 100` (ifinfomsg, then
    /// IFLA_IFNAME, IFLA_LINK and IFLA_LINKINFO { KIND "vlan", DATA { VLAN_ID,
    /// VLAN_PROTOCOL (big-endian) } }, nested attributes flagged NLA_F_NESTED):
    /// the test kernel cannot create VLAN devices, so this is what proves the
    /// parsing end to end.
    #[test]
    fn a_kernel_vlan_link_message_parses_to_its_device() {
        const IFLA_IFNAME: u16 = 3;
        const IFLA_LINK: u16 = 5;
        const IFLA_LINKINFO: u16 = 18;
        const IFLA_INFO_KIND: u16 = 1;
        const IFLA_INFO_DATA: u16 = 2;
        const IFLA_VLAN_ID: u16 = 1;
        const IFLA_VLAN_PROTOCOL: u16 = 5;
        const NLA_F_NESTED: u16 = 1 << 15;
        let mut msg = vec![0u8, 0]; // AF_UNSPEC, padding
        msg.extend_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
        msg.extend_from_slice(&9i32.to_ne_bytes()); // ifindex
        msg.extend_from_slice(&0x1043u32.to_ne_bytes()); // UP|BROADCAST|MULTICAST|RUNNING
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend(rtattr(IFLA_IFNAME, b"eth0.100\0"));
        msg.extend(rtattr(IFLA_LINK, &2u32.to_ne_bytes()));
        let mut data = rtattr(IFLA_VLAN_ID, &100u16.to_ne_bytes());
        data.extend(rtattr(IFLA_VLAN_PROTOCOL, &0x88a8u16.to_be_bytes()));
        let mut info = rtattr(IFLA_INFO_KIND, b"vlan\0");
        info.extend(rtattr(IFLA_INFO_DATA | NLA_F_NESTED, &data));
        msg.extend(rtattr(IFLA_LINKINFO | NLA_F_NESTED, &info));

        use rtnetlink::packet_core::Parseable;
        let parsed = LinkMessage::parse(&msg[..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            vlan_of(&parsed),
            Some(VlanLink {
                name: "eth0.100".into(),
                ifindex: 9,
                device: VlanDevice::new(2, 100, 0x88a8),
            })
        );
    }

    #[test]
    fn other_devices_and_foreign_parents() {
        let veth = link(
            3,
            vec![
                LinkAttribute::IfName("veth0".into()),
                LinkAttribute::Link(4),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            ],
        );
        assert_eq!(vlan_of(&veth), None);
        let foreign = link(
            5,
            vec![
                LinkAttribute::Link(2),
                LinkAttribute::LinkNetNsId(1),
                vlan_info(100, VlanProtocol::Ieee8021Q),
            ],
        );
        assert_eq!(
            vlan_of(&foreign).map(|l| l.device),
            Some(VlanDevice::new(0, 100, 0x8100))
        );
    }

    #[test]
    fn the_map_holds_at_most_its_capacity() {
        let links: Vec<VlanLink> = (1..=MAX_VLAN_DEVICES + 3)
            .map(|i| VlanLink {
                name: format!("v{i}"),
                ifindex: i,
                device: VlanDevice::new(1, (i % 4000) as u16, 0x8100),
            })
            .collect();
        let (map, left_out) = by_ifindex(&links);
        assert_eq!((map.len(), left_out), (MAX_VLAN_DEVICES as usize, 3));
        assert!(map.contains_key(&1) && !map.contains_key(&(MAX_VLAN_DEVICES + 1)));
    }
}
