//! A minimal HTTP/1.1 client for the load driver and the tests: one
//! keep-alive connection (hyper's connection API), GET, form and JSON POSTs,
//! whole bodies. Loopback only: it refuses any address outside
//! `127.0.0.0/8` and `::1`.

use std::net::SocketAddr;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// What can go wrong: connecting, the exchange, a non-loopback address.
pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

/// A response with its whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClientError> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One connection to a loopback server; reconnects if the server closed it.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// `http://127.0.0.1:3000` (or `localhost`, `[::1]`) → its socket address;
/// an error for any other host.
pub fn loopback_addr(url: &str) -> Result<SocketAddr, ClientError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.replacen("localhost", "127.0.0.1", 1);
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| format!("{url}: expected http://127.0.0.1:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{url}: only loopback addresses (127.0.0.0/8, ::1) are allowed").into());
    }
    Ok(addr)
}

impl Client {
    /// A client of the server at `addr` (connects on the first request).
    pub fn new(addr: SocketAddr) -> Result<Client, ClientError> {
        if !addr.ip().is_loopback() {
            return Err(format!("{addr}: only loopback addresses are allowed").into());
        }
        Ok(Client {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            sender: None,
        })
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ClientError> {
        let ready = match &mut self.sender {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            let stream = tokio::net::TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().unwrap_or_else(|| unreachable!("just connected")))
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&'static str>,
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(body))?;
        let sender = self.connect().await?;
        let res = sender.send_request(req).await?;
        let (parts, body) = res.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<Response, ClientError> {
        self.send(Method::GET, path, None, Bytes::new()).await
    }

    /// `POST path` with an `application/x-www-form-urlencoded` body.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Result<Response, ClientError> {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            Method::POST,
            path,
            Some("application/x-www-form-urlencoded"),
            Bytes::from(body),
        )
        .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json<T: serde::Serialize>(&mut self, path: &str, value: &T) -> Result<Response, ClientError> {
        let body = serde_json::to_vec(value)?;
        self.send(Method::POST, path, Some("application/json"), Bytes::from(body))
            .await
    }
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:3000/x").unwrap(),
            "127.0.0.1:3000".parse::<SocketAddr>().unwrap()
        );
        assert!(loopback_addr("http://localhost:8080").is_ok());
        assert!(loopback_addr("http://[::1]:8080").is_ok());
        assert!(loopback_addr("http://10.0.0.1:80").is_err());
        assert!(loopback_addr("http://example.com:80").is_err());
        assert!(loopback_addr("https://127.0.0.1:443").is_err());
        assert!(Client::new("192.168.1.1:80".parse().unwrap()).is_err());
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("Rust & you: 2nd ed."), "Rust+%26+you%3A+2nd+ed.");
        assert_eq!(form_encode("é"), "%C3%A9");
    }
}
