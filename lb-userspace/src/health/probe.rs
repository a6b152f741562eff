//! One health probe: TCP connect, or an HTTP/1.1 GET over a fresh connection
//! (hyper), both bounded by the check's timeout.

use http_body_util::Empty;
use hyper::{body::Bytes, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{CheckKind, CheckSpec};

/// Ok, or why the probe failed (for logs and the API).
pub async fn probe(spec: &CheckSpec) -> Result<(), String> {
    match tokio::time::timeout(spec.timeout, probe_inner(spec)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", spec.timeout)),
    }
}

async fn probe_inner(spec: &CheckSpec) -> Result<(), String> {
    let stream = TcpStream::connect(spec.target)
        .await
        .map_err(|e| format!("connect {}: {e}", spec.target))?;
    let CheckKind::Http {
        path,
        expected_status,
        host,
    } = &spec.kind
    else {
        return Ok(());
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http handshake with {}: {e}", spec.target))?;
    let driver = tokio::spawn(conn);
    let host = host.clone().unwrap_or_else(|| spec.target.to_string());
    let req = Request::get(path.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "xlb-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request for {path}: {e}"))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("GET {path} on {}: {e}", spec.target));
    driver.abort();
    let status = res?.status().as_u16();
    if status == *expected_status {
        Ok(())
    } else {
        Err(format!(
            "GET {path} answered {status}, expected {expected_status}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    fn spec(target: std::net::SocketAddr, kind: CheckKind) -> CheckSpec {
        CheckSpec {
            kind,
            target,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 1,
        }
    }

    /// A one-shot HTTP server on loopback answering `status`.
    async fn http_server(status: u16) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if req.starts_with("GET /healthz ") {
                    "ok"
                } else {
                    "wrong path"
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(reply.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn tcp_probe_succeeds_on_an_open_port_and_fails_on_a_closed_one() {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let open = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(probe(&spec(open, CheckKind::Tcp)).await, Ok(()));
        drop(l);
        let err = probe(&spec(open, CheckKind::Tcp))
            .await
            .expect_err("closed port must fail");
        assert!(err.contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn http_probe_checks_the_status() {
        let ok = http_server(200).await;
        let kind = CheckKind::Http {
            path: "/healthz".into(),
            expected_status: 200,
            host: None,
        };
        assert_eq!(probe(&spec(ok, kind.clone())).await, Ok(()));
        let sick = http_server(503).await;
        let err = probe(&spec(sick, kind)).await.expect_err("503 must fail");
        assert!(err.contains("503"), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        // Accepts but never answers the HTTP request.
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                held.push(c);
            }
        });
        let kind = CheckKind::Http {
            path: "/".into(),
            expected_status: 200,
            host: None,
        };
        let err = probe(&spec(addr, kind)).await.expect_err("must time out");
        assert!(err.contains("no answer"), "{err}");
    }
}
