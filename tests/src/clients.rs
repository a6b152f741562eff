//! Real clients: sockets created inside a client namespace (the calling
//! thread enters it while creating them), optionally bound to one of the
//! client's addresses, talking to VIPs through the balancer.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};

use crate::topology::Host;

pub const TIMEOUT: Duration = Duration::from_secs(3);

/// A TCP connection to `target` from `host` (from `src` if given).
pub fn connect(host: &Host, target: SocketAddr, src: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let _in = host.ns.enter();
    let domain = if target.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if let Some(src) = src {
        s.bind(&SocketAddr::new(src, 0).into())?;
    }
    s.connect_timeout(&target.into(), TIMEOUT)?;
    let stream: TcpStream = s.into();
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads the backend's greeting line.
pub fn greeting(stream: &TcpStream) -> std::io::Result<String> {
    let mut line = String::new();
    let mut r = BufReader::new(stream);
    r.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before the greeting",
        ));
    }
    Ok(line.trim_end().to_string())
}

/// Connects, reads which backend answered, closes.
pub fn which_backend(
    host: &Host,
    target: SocketAddr,
    src: Option<IpAddr>,
) -> std::io::Result<String> {
    let s = connect(host, target, src)?;
    greeting(&s)
}

/// `n` connections spread over `threads` threads and the host's addresses of
/// the target's family; returns each connection's backend name or error.
pub fn many_connections(
    host: &Host,
    target: SocketAddr,
    n: usize,
    threads: usize,
) -> Vec<Result<String, String>> {
    let sources: Vec<IpAddr> = if target.is_ipv4() {
        std::iter::once(IpAddr::V4(host.v4))
            .chain(host.extra_v4.iter().map(|a| IpAddr::V4(*a)))
            .collect()
    } else {
        vec![IpAddr::V6(host.v6)]
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let sources = sources.clone();
                s.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| {
                            let src = sources[i % sources.len()];
                            which_backend(host, target, Some(src))
                                .map_err(|e| format!("connection {i} from {src}: {e}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err("client thread panicked".into())])
            })
            .collect()
    })
}

/// A long-lived connection: greeting read, then request/response exchanges.
pub struct Session {
    pub backend: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Session {
    pub fn open(host: &Host, target: SocketAddr, src: Option<IpAddr>) -> std::io::Result<Self> {
        let s = connect(host, target, src)?;
        let writer = s.try_clone()?;
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the greeting",
            ));
        }
        Ok(Self {
            backend: line.trim_end().to_string(),
            reader,
            writer,
        })
    }

    /// Sends a line and checks the echo.
    pub fn ping(&mut self, msg: &str) -> std::io::Result<()> {
        self.writer.write_all(format!("{msg}\n").as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        if line.trim_end() != msg {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("echo {line:?} != {msg:?}"),
            ));
        }
        Ok(())
    }

    /// Sends `data` and reads it all back, verifying every byte.
    pub fn stream(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(data)?;
        let mut back = vec![0u8; data.len()];
        self.reader.read_exact(&mut back)?;
        if back != data {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "echoed bytes differ",
            ));
        }
        Ok(())
    }
}

/// A UDP socket of `host` bound to local port `sport` (0 = any), for
/// talking to `target`'s family.
pub fn udp_socket(host: &Host, target: SocketAddr, sport: u16) -> std::io::Result<UdpSocket> {
    let _in = host.ns.enter();
    let local: SocketAddr = if target.is_ipv4() {
        SocketAddr::new(IpAddr::V4(host.v4), sport)
    } else {
        SocketAddr::new(IpAddr::V6(host.v6), sport)
    };
    let domain = if target.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&local.into())?;
    Ok(s.into())
}

/// One UDP exchange from `host` (local port `sport`, 0 = any): returns the
/// answering backend's name.
pub fn udp_backend(
    host: &Host,
    target: SocketAddr,
    sport: u16,
    payload: &[u8],
) -> std::io::Result<String> {
    let sock = udp_socket(host, target, sport)?;
    sock.set_read_timeout(Some(TIMEOUT))?;
    udp_exchange(&sock, target, payload)
}

/// Sends `payload` to `target` on `sock` and waits (the socket's read
/// timeout) for the answer that echoes it, skipping late answers to earlier
/// payloads; returns the answering backend's name.
pub fn udp_exchange(
    sock: &UdpSocket,
    target: SocketAddr,
    payload: &[u8],
) -> std::io::Result<String> {
    sock.send_to(payload, target)?;
    let mut buf = [0u8; 2048];
    let (n, from) = loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..n]);
        let echoed = text.split_once('\n').map_or("", |(_, e)| e);
        if from != target || echoed.as_bytes() == payload {
            break (n, from);
        }
    };
    if from != target {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("reply from {from}, not the VIP {target}"),
        ));
    }
    let text = String::from_utf8_lossy(&buf[..n]);
    let name = text.split_once('\n').map_or(&*text, |(name, _)| name);
    Ok(name.to_string())
}

/// Counts of each backend name among successful results.
pub fn tally(results: &[Result<String, String>]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in results.iter().flatten() {
        *m.entry(r.clone()).or_insert(0) += 1;
    }
    m
}
