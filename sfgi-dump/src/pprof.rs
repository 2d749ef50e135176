//! A live target's `net/http/pprof` endpoint, polled for its goroutine dump: the source behind
//! `sfgi attach --pprof URL`. Blocking HTTP/1.1 (TLS by rustls with the web PKI roots, or the
//! certificates of a CA file), with a
//! timeout on every request and a limit on every body; clear errors for what users get wrong
//! (not a pprof endpoint, a 404, authentication).
//!
//! The profile polled is `goroutine?debug=2`: the only form with goroutine ids (identity across
//! polls), wait reasons, wait times and `created by … in goroutine N`. It stops the world while
//! Go writes it (`runtime.Stack(buf, true)`), so the caller paces polls by what each one cost
//! (see [`Poll::took`]). `goroutineleak?debug=2` (Go 1.27, or 1.26 with the experiment) is the
//! same dump after a GC that marks the leaked goroutines `(leaked)`: one request, both.
use crate::dump::Limits;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Which dump to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `goroutine?debug=2`: every goroutine.
    Goroutine,
    /// `goroutineleak?debug=2`: every goroutine, after a leak-detecting GC.
    GoroutineLeak,
}

impl Profile {
    /// The path under `/debug/pprof/`.
    pub fn path(self) -> &'static str {
        match self {
            Profile::Goroutine => "goroutine?debug=2",
            Profile::GoroutineLeak => "goroutineleak?debug=2",
        }
    }
}

/// Why a poll failed.
#[derive(Debug, Error)]
pub enum PprofError {
    /// The URL is not `http(s)://HOST[:PORT][/…]`.
    #[error("{0:?} is not an http:// or https:// URL of a pprof endpoint (e.g. http://127.0.0.1:6060 or http://HOST:PORT/debug/pprof/)")]
    BadUrl(String),
    /// A CA file without a usable certificate.
    #[error("no PEM certificate in the CA file ({0})")]
    BadCa(String),
    /// A header given as something other than `Name: value`.
    #[error("{0:?} is not a header (expected `Name: value`)")]
    BadHeader(String),
    /// The server said 404.
    #[error("{url}: 404 Not Found: not a pprof endpoint (is net/http/pprof imported and served there? give the base, e.g. http://HOST:PORT or …/debug/pprof/)")]
    NotFound {
        /// The URL asked.
        url: String,
    },
    /// The server wants credentials.
    #[error("{url}: HTTP {status}: the endpoint wants credentials (--pprof-token TOKEN or --pprof-header 'Name: value')")]
    Auth {
        /// The URL asked.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// Another HTTP error status.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status.
        status: u16,
    },
    /// The request did not finish in time.
    #[error("{url}: no complete answer within {timeout:?} (--pprof-timeout)")]
    Timeout {
        /// The URL asked.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The answer is larger than the limit.
    #[error("{url}: the answer is larger than the {limit_mib} MiB limit (--max-size)")]
    TooLarge {
        /// The URL asked.
        url: String,
        /// The limit, MiB.
        limit_mib: u64,
    },
    /// Anything else on the way (DNS, connection refused, TLS).
    #[error("{url}: {why}")]
    Transport {
        /// The URL asked.
        url: String,
        /// What went wrong.
        why: String,
    },
}

/// How to reach the endpoint.
#[derive(Clone, Debug)]
pub struct EndpointOptions {
    /// Longest a whole request may take (connect, the dump, the transfer).
    pub timeout: Duration,
    /// Extra request headers (`Authorization`, a cookie, a tenant header).
    pub headers: Vec<(String, String)>,
    /// Body and size limits.
    pub limits: Limits,
    /// PEM certificates to trust instead of the web PKI roots (a private CA, a self-signed
    /// endpoint).
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            timeout: Duration::from_secs(30),
            headers: Vec::new(),
            limits: Limits::default(),
            ca_pem: None,
        }
    }
}

/// A `net/http/pprof` endpoint.
pub struct Endpoint {
    base: String,
    agent: ureq::Agent,
    opts: EndpointOptions,
}

/// One poll's answer.
#[derive(Debug)]
pub struct Poll {
    /// The dump's bytes.
    pub body: Vec<u8>,
    /// When the request was sent.
    pub sent: Instant,
    /// How long the request took, all of it: an upper bound of how long the target's world
    /// was stopped to write the dump.
    pub took: Duration,
}

/// Parses `Name: value`.
pub fn parse_header(s: &str) -> Result<(String, String), PprofError> {
    match s.split_once(':') {
        Some((n, v))
            if !n.trim().is_empty()
                && n.trim().bytes().all(|b| b.is_ascii_graphic() && b != b':') =>
        {
            Ok((n.trim().to_string(), v.trim().to_string()))
        }
        _ => Err(PprofError::BadHeader(s.to_string())),
    }
}

/// The endpoint's `/debug/pprof/` base for what the user gave: `http://HOST:PORT`,
/// `…/debug/pprof`, `…/debug/pprof/`, or a profile's own URL (`…/debug/pprof/goroutine?debug=2`).
pub fn base_url(url: &str) -> Result<String, PprofError> {
    let u = url.trim();
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(PprofError::BadUrl(url.to_string()));
    };
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.starts_with('/') {
        return Err(PprofError::BadUrl(url.to_string()));
    }
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(PprofError::BadUrl(url.to_string()));
    }
    let path = path.trim_end_matches('/');
    let path = match path.find("debug/pprof") {
        Some(i) => &path[..i],
        None => path,
    };
    let path = path.trim_end_matches('/');
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("/{path}")
    };
    Ok(format!("{scheme}://{host}{prefix}/debug/pprof/"))
}

impl Endpoint {
    /// An endpoint at `url` (see [`base_url`]).
    pub fn new(url: &str, opts: EndpointOptions) -> Result<Endpoint, PprofError> {
        let base = base_url(url)?;
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = &opts.ca_pem {
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                    Ok(_) => {}
                    Err(e) => return Err(PprofError::BadCa(e.to_string())),
                }
            }
            if certs.is_empty() {
                return Err(PprofError::BadCa("none found".into()));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .max_redirects(3)
            .user_agent(concat!("sfgi/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Endpoint { base, agent, opts })
    }

    /// The `/debug/pprof/` base polled.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `profile`.
    pub fn url(&self, profile: Profile) -> String {
        format!("{}{}", self.base, profile.path())
    }

    /// Fetches `profile` (blocking; bounded by the timeout and the size limit).
    pub fn fetch(&self, profile: Profile) -> Result<Poll, PprofError> {
        let url = self.url(profile);
        let mut req = self.agent.get(&url);
        for (n, v) in &self.opts.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        let sent = Instant::now();
        let mut resp = req.call().map_err(|e| self.error(&url, e))?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            404 => return Err(PprofError::NotFound { url }),
            401 | 403 => return Err(PprofError::Auth { url, status }),
            _ => return Err(PprofError::Status { url, status }),
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(self.opts.limits.max_bytes)
            .read_to_vec()
            .map_err(|e| self.error(&url, e))?;
        Ok(Poll {
            body,
            sent,
            took: sent.elapsed(),
        })
    }

    fn error(&self, url: &str, e: ureq::Error) -> PprofError {
        let url = url.to_string();
        match e {
            ureq::Error::Timeout(_) => PprofError::Timeout {
                url,
                timeout: self.opts.timeout,
            },
            ureq::Error::BodyExceedsLimit(_) => PprofError::TooLarge {
                url,
                limit_mib: self.opts.limits.max_bytes >> 20,
            },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                PprofError::Timeout {
                    url,
                    timeout: self.opts.timeout,
                }
            }
            other => PprofError::Transport {
                url,
                why: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn bases_from_what_users_give() {
        let b = |u| base_url(u).unwrap();
        assert_eq!(
            b("http://127.0.0.1:6060"),
            "http://127.0.0.1:6060/debug/pprof/"
        );
        assert_eq!(b("http://h:1/"), "http://h:1/debug/pprof/");
        assert_eq!(b("http://h:1/debug/pprof"), "http://h:1/debug/pprof/");
        assert_eq!(b("https://h/debug/pprof/"), "https://h/debug/pprof/");
        assert_eq!(
            b("http://h/debug/pprof/goroutine?debug=2"),
            "http://h/debug/pprof/"
        );
        assert_eq!(
            b("http://h/admin/debug/pprof/"),
            "http://h/admin/debug/pprof/"
        );
        assert_eq!(b("http://h/admin"), "http://h/admin/debug/pprof/");
        for bad in ["h:6060", "ftp://h", "http://", "http:///x", "http://a b/"] {
            assert!(matches!(base_url(bad), Err(PprofError::BadUrl(_))), "{bad}");
        }
        assert_eq!(
            parse_header("Authorization: Bearer x:y").unwrap(),
            ("Authorization".to_string(), "Bearer x:y".to_string())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": v").is_err());
        let bad_ca = Endpoint::new(
            "https://h",
            EndpointOptions {
                ca_pem: Some(b"not a certificate".to_vec()),
                ..EndpointOptions::default()
            },
        );
        assert!(matches!(bad_ca, Err(PprofError::BadCa(_))));
    }

    /// A one-shot HTTP server answering `status` with `body` (or never answering); returns its
    /// base URL and the request line it got.
    fn server(
        status: &'static str,
        body: Vec<u8>,
        hang: bool,
    ) -> (String, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            let mut headers = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                headers.push_str(&line);
            }
            if hang {
                std::thread::sleep(Duration::from_secs(3));
                return first;
            }
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
            format!("{first}{headers}")
        });
        (url, h)
    }

    fn endpoint(url: &str, timeout_ms: u64, max_bytes: u64) -> Endpoint {
        Endpoint::new(
            url,
            EndpointOptions {
                timeout: Duration::from_millis(timeout_ms),
                headers: vec![("Authorization".into(), "Bearer s3cret".into())],
                limits: Limits {
                    max_bytes,
                    ..Limits::default()
                },
                ca_pem: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_poll_and_what_can_go_wrong() {
        let (url, h) = server("200 OK", b"goroutine 1 [running]:\n".to_vec(), false);
        let p = endpoint(&url, 5000, 1 << 20)
            .fetch(Profile::Goroutine)
            .unwrap();
        assert_eq!(p.body, b"goroutine 1 [running]:\n");
        let req = h.join().unwrap();
        assert!(
            req.starts_with("GET /debug/pprof/goroutine?debug=2 HTTP/1.1"),
            "{req}"
        );
        assert!(
            req.contains("Authorization: Bearer s3cret")
                || req.contains("authorization: Bearer s3cret"),
            "{req}"
        );

        let (url, _h) = server("404 Not Found", Vec::new(), false);
        let e = endpoint(&url, 5000, 1 << 20)
            .fetch(Profile::GoroutineLeak)
            .unwrap_err();
        assert!(matches!(e, PprofError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("goroutineleak?debug=2: 404"), "{e}");
        let (url, _h) = server("401 Unauthorized", Vec::new(), false);
        let e = endpoint(&url, 5000, 1 << 20)
            .fetch(Profile::Goroutine)
            .unwrap_err();
        assert!(matches!(e, PprofError::Auth { status: 401, .. }), "{e}");
        let (url, _h) = server("500 Internal Server Error", Vec::new(), false);
        let e = endpoint(&url, 5000, 1 << 20)
            .fetch(Profile::Goroutine)
            .unwrap_err();
        assert!(matches!(e, PprofError::Status { status: 500, .. }), "{e}");
        let (url, _h) = server("200 OK", vec![b'x'; 4096], false);
        let e = endpoint(&url, 5000, 1000)
            .fetch(Profile::Goroutine)
            .unwrap_err();
        assert!(matches!(e, PprofError::TooLarge { .. }), "{e}");
        let (url, _h) = server("200 OK", Vec::new(), true);
        let t0 = Instant::now();
        let e = endpoint(&url, 300, 1000)
            .fetch(Profile::Goroutine)
            .unwrap_err();
        assert!(matches!(e, PprofError::Timeout { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2));
        // Nothing listening.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = endpoint(&format!("http://127.0.0.1:{port}"), 2000, 1000)
            .fetch(Profile::Goroutine)
            .unwrap_err();
        assert!(matches!(e, PprofError::Transport { .. }), "{e}");
    }
}
