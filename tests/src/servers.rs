//! Real servers on the test backends, run as threads of the test process with
//! sockets bound inside the backend's namespace:
//! - TCP: greets every connection with the backend's name and a newline, then
//!   echoes everything (long-lived connections can check they still reach the
//!   same backend, and streams can check no byte is lost);
//! - UDP: answers each datagram with `<name>\n<payload>`;
//! - HTTP health endpoint: `200 ok` (or `503` when set unhealthy).
//!
//! [`BackendServers::stop`] closes the listeners and every open connection (a
//! crashed server); [`BackendServers::start`] brings them back.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::netns::NetNs;

/// Ports every backend serves.
#[derive(Clone, Debug)]
pub struct ServerPorts {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    pub http_health: u16,
    /// Addresses the UDP servers bind to: the VIPs. A UDP server behind a DSR
    /// balancer must answer from the address the client sent to, and a socket
    /// bound to the wildcard would answer from the interface's address.
    pub udp_addrs: Vec<IpAddr>,
}

impl Default for ServerPorts {
    fn default() -> Self {
        Self {
            tcp: vec![80, 443],
            udp: vec![53],
            http_health: 8080,
            udp_addrs: Vec::new(),
        }
    }
}

/// Owned duplicates of every live socket of one backend's servers, so `stop`
/// can shut them down. Holding duplicates (not fd numbers, which the process
/// reuses for other sockets, the clients' included) makes sure `stop` only
/// touches these servers' sockets; a connection removes itself when it ends.
#[derive(Default)]
struct Sockets {
    next: u64,
    open: HashMap<u64, Socket>,
}

impl Sockets {
    fn add(&mut self, s: SockRef<'_>) -> Option<u64> {
        let dup = s.try_clone().ok()?;
        self.next += 1;
        self.open.insert(self.next, dup);
        Some(self.next)
    }

    fn shutdown_all(&mut self) {
        for (_, s) in self.open.drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

type SharedSockets = Arc<Mutex<Sockets>>;

fn locked(s: &SharedSockets) -> std::sync::MutexGuard<'_, Sockets> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

struct Running {
    stop: Arc<AtomicBool>,
    sockets: SharedSockets,
    threads: Vec<JoinHandle<()>>,
}

/// The servers of one backend.
pub struct BackendServers {
    name: String,
    ns_name: String,
    ports: ServerPorts,
    running: Option<Running>,
    /// TCP connections accepted since creation (all ports).
    pub accepted: Arc<AtomicU64>,
    healthy: Arc<AtomicBool>,
}

impl BackendServers {
    pub fn start_in(ns: &NetNs, name: &str, ports: ServerPorts) -> Self {
        let mut s = Self {
            name: name.to_string(),
            ns_name: ns.name().to_string(),
            ports,
            running: None,
            accepted: Arc::new(AtomicU64::new(0)),
            healthy: Arc::new(AtomicBool::new(true)),
        };
        s.start_with(ns);
        s
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Makes the HTTP health endpoint answer 503 (or 200 again).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// (Re)starts the servers in the backend's namespace.
    pub fn start(&mut self) {
        let ns = NsRef(self.ns_name.clone());
        let _in = ns.enter();
        self.spawn_all();
    }

    fn start_with(&mut self, ns: &NetNs) {
        let _in = ns.enter();
        self.spawn_all();
    }

    fn spawn_all(&mut self) {
        if self.running.is_some() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: SharedSockets = Arc::default();
        let mut threads = Vec::new();
        for port in self.ports.tcp.clone() {
            for l in listeners(port) {
                threads.push(self.spawn_tcp(l, stop.clone(), sockets.clone(), Handler::Echo));
            }
        }
        for l in listeners(self.ports.http_health) {
            threads.push(self.spawn_tcp(l, stop.clone(), sockets.clone(), Handler::Health));
        }
        for port in self.ports.udp.clone() {
            for sock in udp_sockets(port, &self.ports.udp_addrs) {
                locked(&sockets).add(SockRef::from(&sock));
                let (stop, name) = (stop.clone(), self.name.clone());
                threads.push(std::thread::spawn(move || udp_loop(sock, &name, &stop)));
            }
        }
        self.running = Some(Running {
            stop,
            sockets,
            threads,
        });
    }

    fn spawn_tcp(
        &self,
        l: TcpListener,
        stop: Arc<AtomicBool>,
        sockets: SharedSockets,
        h: Handler,
    ) -> JoinHandle<()> {
        locked(&sockets).add(SockRef::from(&l));
        let name = self.name.clone();
        let accepted = self.accepted.clone();
        let healthy = self.healthy.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((conn, _)) = l.accept() else { break };
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = locked(&sockets).add(SockRef::from(&conn));
                if matches!(h, Handler::Echo) {
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                let (name, healthy, sockets) = (name.clone(), healthy.clone(), sockets.clone());
                std::thread::spawn(move || {
                    match h {
                        Handler::Echo => echo(conn, &name),
                        Handler::Health => health(conn, healthy.load(Ordering::SeqCst)),
                    }
                    if let Some(id) = id {
                        locked(&sockets).open.remove(&id);
                    }
                });
            }
        })
    }

    /// Stops listening and closes every connection, like a crashed server.
    pub fn stop(&mut self) {
        let Some(r) = self.running.take() else { return };
        r.stop.store(true, Ordering::SeqCst);
        locked(&r.sockets).shutdown_all();
        for t in r.threads {
            let _ = t.join();
        }
    }
}

impl Drop for BackendServers {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Copy)]
enum Handler {
    Echo,
    Health,
}

/// Entering a namespace by name (for restarts after the NetNs guard moved).
struct NsRef(String);
impl NsRef {
    fn enter(&self) -> crate::netns::Entered {
        crate::netns::enter_by_name(&self.0)
    }
}

/// A socket bound to `addr` (IPv6 sockets IPv6-only, address reusable).
fn bound(addr: SocketAddr, ty: Type, proto: Protocol) -> Socket {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, ty, Some(proto)).unwrap_or_else(|e| panic!("socket: {e}"));
    if addr.is_ipv6() {
        s.set_only_v6(true)
            .unwrap_or_else(|e| panic!("IPV6_V6ONLY: {e}"));
    }
    s.set_reuse_address(true)
        .unwrap_or_else(|e| panic!("SO_REUSEADDR: {e}"));
    s.bind(&addr.into())
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    s
}

/// TCP listeners on every IPv4 and IPv6 address.
fn listeners(port: u16) -> Vec<TcpListener> {
    [
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
    ]
    .into_iter()
    .map(|addr| {
        let s = bound(addr, Type::STREAM, Protocol::TCP);
        s.listen(1024)
            .unwrap_or_else(|e| panic!("listen {addr}: {e}"));
        s.into()
    })
    .collect()
}

/// UDP sockets on each of `addrs` (the VIPs: replies must come from them).
fn udp_sockets(port: u16, addrs: &[IpAddr]) -> Vec<UdpSocket> {
    addrs
        .iter()
        .map(|a| bound(SocketAddr::new(*a, port), Type::DGRAM, Protocol::UDP).into())
        .collect()
}

fn echo(mut conn: TcpStream, name: &str) {
    let _ = conn.set_nodelay(true);
    if conn.write_all(format!("{name}\n").as_bytes()).is_err() {
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn health(mut conn: TcpStream, healthy: bool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 1024];
    let _ = conn.read(&mut buf);
    let reply: &[u8] = if healthy {
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    } else {
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nsick"
    };
    let _ = conn.write_all(reply);
}

fn udp_loop(sock: UdpSocket, name: &str, stop: &AtomicBool) {
    // Room for a whole (reassembled) datagram: the echo proves it arrived.
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            break;
        };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut reply = format!("{name}\n").into_bytes();
        reply.extend_from_slice(&buf[..n]);
        let _ = sock.send_to(&reply, peer);
    }
}

/// Which address family a socket address is.
pub fn is_v6(ip: IpAddr) -> bool {
    ip.is_ipv6()
}
