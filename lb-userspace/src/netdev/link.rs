//! One interface as rtnetlink describes it (RTM_GETLINK): its kind, its
//! veth peer, and the XDP programs attached to it with their modes.

use futures_util::TryStreamExt;
use rtnetlink::{
    packet_core::ErrorMessage,
    packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage, LinkXdp, XdpAttached},
    Handle,
};

use super::NetdevError;

/// The XDP programs attached to an interface, by mode (program ids).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpPrograms {
    /// Native (driver) mode.
    pub native: Option<u32>,
    /// Generic (skb) mode.
    pub generic: Option<u32>,
    /// Offloaded to the NIC.
    pub offloaded: Option<u32>,
}

impl XdpPrograms {
    /// The mode `prog_id` runs in on this interface, if it is attached here.
    pub fn mode_of(&self, prog_id: u32) -> Option<&'static str> {
        if self.native == Some(prog_id) {
            Some("native")
        } else if self.generic == Some(prog_id) {
            Some("generic")
        } else if self.offloaded == Some(prog_id) {
            Some("offloaded")
        } else {
            None
        }
    }
}

/// What xlb needs to know about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub ifindex: u32,
    pub is_veth: bool,
    /// IFLA_LINK: for a veth, its peer's ifindex (in the peer's namespace).
    pub link_ifindex: Option<u32>,
    /// IFLA_LINK_NETNSID: the namespace of the peer when it is not ours, as
    /// the id our namespace gives it.
    pub link_netnsid: Option<i32>,
    pub xdp: XdpPrograms,
}

/// Which interface to ask about.
#[derive(Clone, Debug)]
pub enum Query<'a> {
    /// By name, in our network namespace.
    Name(&'a str),
    /// By index in the namespace our namespace calls `nsid` (`None`: ours).
    Index { ifindex: u32, nsid: Option<i32> },
}

impl std::fmt::Display for Query<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::Name(n) => f.write_str(n),
            Query::Index {
                ifindex,
                nsid: None,
            } => write!(f, "#{ifindex}"),
            Query::Index {
                ifindex,
                nsid: Some(n),
            } => write!(f, "#{ifindex} in network namespace nsid {n}"),
        }
    }
}

/// RTM_GETLINK for one interface.
pub async fn get(handle: &Handle, query: Query<'_>) -> Result<Link, NetdevError> {
    let what = query.to_string();
    let mut req = handle.link().get();
    req = match query {
        Query::Name(name) => req.match_name(name),
        Query::Index { ifindex, nsid } => {
            let mut r = req.match_index(ifindex);
            if let Some(n) = nsid {
                // IFLA_TARGET_NETNSID (once IFLA_IF_NETNSID): look the
                // index up in that namespace.
                r.message_mut().attributes.push(LinkAttribute::IfNetnsId(n));
            }
            r
        }
    };
    let msg = match req.execute().try_next().await {
        Ok(Some(m)) => m,
        Ok(None) => return Err(NetdevError::NoSuchLink { what }),
        Err(rtnetlink::Error::NetlinkError(e)) if is_no_device(&e) => {
            return Err(NetdevError::NoSuchLink { what })
        }
        Err(source) => return Err(NetdevError::Netlink { what, source }),
    };
    Ok(parse(&msg))
}

fn is_no_device(e: &ErrorMessage) -> bool {
    e.raw_code() == -libc::ENODEV
}

fn parse(msg: &LinkMessage) -> Link {
    let mut link = Link {
        name: String::new(),
        ifindex: msg.header.index,
        is_veth: false,
        link_ifindex: None,
        link_netnsid: None,
        xdp: XdpPrograms::default(),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Link(i) => link.link_ifindex = Some(*i),
            LinkAttribute::LinkNetNsId(n) => link.link_netnsid = Some(*n),
            LinkAttribute::LinkInfo(infos) => {
                link.is_veth = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)));
            }
            LinkAttribute::Xdp(xdp) => link.xdp = xdp_programs(xdp),
            _ => {}
        }
    }
    link
}

/// IFLA_XDP: with one program, `ATTACHED` gives its mode and `PROG_ID` its
/// id; with several (`XDP_ATTACHED_MULTI`), one id attribute per mode.
fn xdp_programs(attrs: &[LinkXdp]) -> XdpPrograms {
    let mut attached = XdpAttached::None;
    let mut single = None;
    let mut p = XdpPrograms::default();
    for a in attrs {
        match a {
            LinkXdp::Attached(m) => attached = *m,
            LinkXdp::ProgId(id) => single = Some(*id),
            LinkXdp::DrvProgId(id) => p.native = Some(*id),
            LinkXdp::SkbProgId(id) => p.generic = Some(*id),
            LinkXdp::HwProgId(id) => p.offloaded = Some(*id),
            _ => {}
        }
    }
    match attached {
        XdpAttached::Driver => p.native = p.native.or(single),
        XdpAttached::SocketBuffer => p.generic = p.generic.or(single),
        XdpAttached::Hardware => p.offloaded = p.offloaded.or(single),
        _ => {}
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_program_takes_the_mode_of_attached() {
        let p = xdp_programs(&[LinkXdp::Attached(XdpAttached::Driver), LinkXdp::ProgId(7)]);
        assert_eq!(p.native, Some(7));
        assert_eq!(p.mode_of(7), Some("native"));
        let p = xdp_programs(&[
            LinkXdp::Attached(XdpAttached::SocketBuffer),
            LinkXdp::ProgId(9),
        ]);
        assert_eq!((p.native, p.generic), (None, Some(9)));
        assert_eq!(p.mode_of(7), None);
        assert_eq!(
            xdp_programs(&[LinkXdp::Attached(XdpAttached::None)]),
            XdpPrograms::default()
        );
    }

    #[test]
    fn several_programs_have_one_id_per_mode() {
        let p = xdp_programs(&[
            LinkXdp::Attached(XdpAttached::Multiple),
            LinkXdp::ProgId(0),
            LinkXdp::DrvProgId(3),
            LinkXdp::SkbProgId(4),
        ]);
        assert_eq!((p.native, p.generic, p.offloaded), (Some(3), Some(4), None));
    }
}
