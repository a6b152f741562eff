//! Long-lived TCP streams through a VIP, each exchanging a line with its
//! backend's echo server every `period` on its own thread, recording when
//! every echo came back. A stream that lands on another backend meets a
//! socket that does not know it (a reset), so "no stream broke" means every
//! stream kept its backend.

use std::{
    io::{BufRead, BufReader, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{clients::connect, topology::Host};

/// How long an echo may take before the stream counts as broken: far
/// beyond a few TCP retransmissions (200 ms, 400 ms, 800 ms, ...).
pub const ECHO_TIMEOUT: Duration = Duration::from_secs(20);

/// What one stream saw.
#[derive(Debug)]
pub struct StreamLog {
    pub local: SocketAddr,
    /// The backend that greeted it.
    pub backend: String,
    /// When each echo came back.
    pub echoes: Vec<Instant>,
    /// Why it broke, if it did.
    pub broken: Option<String>,
}

/// Streams running on their threads.
pub struct Streams {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<StreamLog>>,
    pub period: Duration,
}

impl Streams {
    /// Opens `n` streams to `target`, spread over the clients and their
    /// addresses (each with a fresh source port), and starts them.
    pub fn open(clients: &[Host], target: SocketAddr, n: usize, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for i in 0..n {
            let host = &clients[i % clients.len()];
            let sources: Vec<IpAddr> = std::iter::once(host.v4)
                .chain(host.extra_v4.iter().copied())
                .map(IpAddr::V4)
                .collect();
            let src = sources[(i / clients.len()) % sources.len()];
            let stream = connect(host, target, Some(src))
                .unwrap_or_else(|e| panic!("opening stream {i} from {src} to {target}: {e}"));
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || run(stream, period, &stop)));
        }
        Self {
            stop,
            threads,
            period,
        }
    }

    /// Stops every stream and returns what each saw.
    pub fn finish(self) -> Vec<StreamLog> {
        self.stop.store(true, Ordering::SeqCst);
        self.threads
            .into_iter()
            .map(|t| {
                t.join().unwrap_or_else(|_| StreamLog {
                    local: SocketAddr::from(([0, 0, 0, 0], 0)),
                    backend: String::new(),
                    echoes: Vec::new(),
                    broken: Some("stream thread panicked".into()),
                })
            })
            .collect()
    }
}

fn run(stream: TcpStream, period: Duration, stop: &AtomicBool) -> StreamLog {
    let mut log = StreamLog {
        local: stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        backend: String::new(),
        echoes: Vec::new(),
        broken: None,
    };
    let result = (|| -> std::io::Result<()> {
        stream.set_read_timeout(Some(ECHO_TIMEOUT))?;
        stream.set_write_timeout(Some(ECHO_TIMEOUT))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        log.backend = line.trim_end().to_string();
        if log.backend.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the greeting",
            ));
        }
        let mut seq = 0u64;
        while !stop.load(Ordering::SeqCst) {
            seq += 1;
            let msg = format!("{seq} from {}", log.local);
            writer.write_all(format!("{msg}\n").as_bytes())?;
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the backend closed the stream",
                ));
            }
            if line.trim_end() != msg {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("echo {line:?} for {msg:?}"),
                ));
            }
            log.echoes.push(Instant::now());
            std::thread::sleep(period);
        }
        Ok(())
    })();
    if let Err(e) = result {
        log.broken = Some(format!("{} (to {}): {e}", log.local, log.backend));
    }
    log
}

/// How the streams went through an event at `at`.
#[derive(Debug)]
pub struct Disruption {
    pub streams: usize,
    /// Why each broken stream broke.
    pub broken: Vec<String>,
    /// Streams whose echoes stopped for more than 4 periods around `at`.
    pub stalled: usize,
    /// From `at` to the first echo after it of the stream that waited the
    /// longest: when every stream was moving again.
    pub last_recovered: Option<Duration>,
}

pub fn disruption(logs: &[StreamLog], at: Instant, period: Duration) -> Disruption {
    let mut stalled = 0;
    let mut last_recovered = None::<Duration>;
    for l in logs {
        let before = l.echoes.iter().rev().find(|t| **t <= at);
        let after = l.echoes.iter().find(|t| **t > at);
        if let Some(after) = after {
            let recovered = after.duration_since(at);
            last_recovered = Some(last_recovered.map_or(recovered, |m| m.max(recovered)));
            if let Some(before) = before {
                if after.duration_since(*before) > period * 4 + Duration::from_millis(50) {
                    stalled += 1;
                }
            }
        }
    }
    Disruption {
        streams: logs.len(),
        broken: logs.iter().filter_map(|l| l.broken.clone()).collect(),
        stalled,
        last_recovered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(echoes_ms: &[u64], t0: Instant) -> StreamLog {
        StreamLog {
            local: SocketAddr::from(([10, 30, 0, 2], 40000)),
            backend: "backend-0".into(),
            echoes: echoes_ms
                .iter()
                .map(|ms| t0 + Duration::from_millis(*ms))
                .collect(),
            broken: None,
        }
    }

    #[test]
    fn the_slowest_stream_sets_the_recovery_time() {
        let t0 = Instant::now();
        let at = t0 + Duration::from_millis(1000);
        let period = Duration::from_millis(50);
        let logs = vec![
            log(&[900, 950, 1000, 1040, 1090], t0),
            // Stalled from 980 to 1700: recovered 700 ms after the event.
            log(&[930, 980, 1700, 1750], t0),
            StreamLog {
                broken: Some("reset".into()),
                ..log(&[960], t0)
            },
        ];
        let d = disruption(&logs, at, period);
        assert_eq!(d.streams, 3);
        assert_eq!(d.broken, ["reset"]);
        assert_eq!(d.stalled, 1);
        assert_eq!(d.last_recovered, Some(Duration::from_millis(700)));
    }
}
