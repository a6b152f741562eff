//! The CLI's client for the daemon's HTTP/JSON API on a Unix socket (hyper).

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;
use tokio::net::UnixStream;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "cannot reach the xlb daemon at {}: is `xlb run` running (and are you root)? \
         A daemon with another global.api_socket is reached with --socket PATH or XLB_SOCKET=PATH",
        path.display()
    )]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the daemon: {0}")]
    Http(String),
    #[error("the daemon refused the request ({status}): {message}")]
    Api { status: u16, message: String },
    #[error("unexpected answer from the daemon: {0}")]
    Decode(String),
}

/// A connection-per-request client: the CLI sends a handful of requests.
pub struct ApiClient {
    socket: PathBuf,
}

impl ApiClient {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_path_buf(),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.request(Method::GET, path, None).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let body = self.request(Method::GET, path, None).await?;
        String::from_utf8(body.to_vec()).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let out = self.request(method, path, Some(json)).await?;
        serde_json::from_slice(&out).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "xlb")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        driver.abort();
        if status.is_success() {
            return Ok(bytes);
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            message: error_message(status, &bytes),
        })
    }
}

/// The `error` field of a JSON error body, or the raw body.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        error: String,
        field: Option<String>,
    }
    match serde_json::from_slice::<E>(body) {
        // Config errors already name their field (and location) in the text.
        Ok(E {
            error,
            field: Some(f),
        }) if !error.contains(&f) => format!("{f}: {error}"),
        Ok(E { error, .. }) => error,
        Err(_) if body.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}
