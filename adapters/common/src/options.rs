//! Socket options from seed 001, set through `socket2` on any socket a runtime hands us.

use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// TCP keepalive: on, with optional probe timings (each left to the OS when `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub idle: Option<Duration>,
    /// Time between probes (`TCP_KEEPINTVL`).
    pub interval: Option<Duration>,
    /// Probes before the connection is dropped (`TCP_KEEPCNT`).
    pub count: Option<u32>,
}

/// Socket options to apply to a socket; every field left `None` keeps the OS default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `TCP_NODELAY`.
    pub nodelay: Option<bool>,
    /// `SO_KEEPALIVE` (`Some(None)` turns it off; `Some(Some(k))` on with timings).
    pub keepalive: Option<Option<Keepalive>>,
    /// `TCP_CORK` (Linux only; ignored elsewhere).
    pub cork: Option<bool>,
    /// `SO_REUSEADDR`.
    pub reuseaddr: Option<bool>,
    /// `SO_REUSEPORT` (Unix).
    pub reuseport: Option<bool>,
    /// `SO_SNDBUF` in bytes.
    pub send_buffer: Option<usize>,
    /// `SO_RCVBUF` in bytes.
    pub recv_buffer: Option<usize>,
    /// `SO_LINGER` (`Some(None)` turns lingering off).
    pub linger: Option<Option<Duration>>,
    /// `FD_CLOEXEC` (Unix).
    pub cloexec: Option<bool>,
    /// `SO_RCVTIMEO`, for blocking sockets.
    pub read_timeout: Option<Duration>,
    /// `SO_SNDTIMEO`, for blocking sockets.
    pub write_timeout: Option<Duration>,
}

impl SocketOptions {
    /// No options: the OS defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `TCP_NODELAY`.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = Some(on);
        self
    }

    /// Turn keepalive on with these timings.
    pub fn keepalive(mut self, keepalive: Keepalive) -> Self {
        self.keepalive = Some(Some(keepalive));
        self
    }

    /// Set `TCP_CORK` (Linux).
    pub fn cork(mut self, on: bool) -> Self {
        self.cork = Some(on);
        self
    }

    /// Set `SO_REUSEADDR`.
    pub fn reuseaddr(mut self, on: bool) -> Self {
        self.reuseaddr = Some(on);
        self
    }

    /// Set `SO_REUSEPORT`.
    pub fn reuseport(mut self, on: bool) -> Self {
        self.reuseport = Some(on);
        self
    }

    /// Set `SO_SNDBUF`.
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = Some(bytes);
        self
    }

    /// Set `SO_RCVBUF`.
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }

    /// Set `SO_LINGER`.
    pub fn linger(mut self, linger: Option<Duration>) -> Self {
        self.linger = Some(linger);
        self
    }

    /// Set close-on-exec.
    pub fn cloexec(mut self, on: bool) -> Self {
        self.cloexec = Some(on);
        self
    }

    /// Set `SO_RCVTIMEO` (blocking sockets).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Set `SO_SNDTIMEO` (blocking sockets).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// Apply every option that is set. TCP-only options are skipped on sockets that are not
    /// TCP (a Unix or UDP socket), so one option set serves every transport.
    pub fn apply<'s, S>(&self, socket: &'s S) -> io::Result<()>
    where
        SockRef<'s>: From<&'s S>,
    {
        let sock = SockRef::from(socket);
        let is_tcp = matches!(sock.r#type(), Ok(t) if t == socket2::Type::STREAM)
            && sock.local_addr().map(|a| a.is_ipv4() || a.is_ipv6()).unwrap_or(false);
        if is_tcp {
            if let Some(on) = self.nodelay {
                sock.set_tcp_nodelay(on)?;
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if let Some(on) = self.cork {
                sock.set_tcp_cork(on)?;
            }
        }
        match self.keepalive {
            Some(Some(k)) if is_tcp => {
                let mut ka = TcpKeepalive::new();
                if let Some(idle) = k.idle {
                    ka = ka.with_time(idle);
                }
                #[cfg(unix)]
                if let Some(interval) = k.interval {
                    ka = ka.with_interval(interval);
                }
                #[cfg(unix)]
                if let Some(count) = k.count {
                    ka = ka.with_retries(count);
                }
                sock.set_tcp_keepalive(&ka)?;
            }
            Some(None) if is_tcp => sock.set_keepalive(false)?,
            _ => {}
        }
        if let Some(on) = self.reuseaddr {
            sock.set_reuse_address(on)?;
        }
        #[cfg(unix)]
        if let Some(on) = self.reuseport {
            sock.set_reuse_port(on)?;
        }
        if let Some(n) = self.send_buffer {
            sock.set_send_buffer_size(n)?;
        }
        if let Some(n) = self.recv_buffer {
            sock.set_recv_buffer_size(n)?;
        }
        if let Some(linger) = self.linger {
            sock.set_linger(linger)?;
        }
        #[cfg(unix)]
        if let Some(on) = self.cloexec {
            sock.set_cloexec(on)?;
        }
        if let Some(t) = self.read_timeout {
            sock.set_read_timeout(Some(t))?;
        }
        if let Some(t) = self.write_timeout {
            sock.set_write_timeout(Some(t))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    #[test]
    fn applies_to_tcp_and_skips_tcp_only_options_on_udp() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let opts = SocketOptions::new()
            .nodelay(true)
            .keepalive(Keepalive {
                idle: Some(Duration::from_secs(30)),
                interval: Some(Duration::from_secs(5)),
                count: Some(3),
            })
            .send_buffer(64 * 1024)
            .recv_buffer(64 * 1024)
            .linger(Some(Duration::from_secs(1)))
            .read_timeout(Duration::from_secs(2));
        opts.apply(&stream).unwrap();
        let sock = SockRef::from(&stream);
        assert!(sock.tcp_nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.linger().unwrap(), Some(Duration::from_secs(1)));
        assert_eq!(stream.read_timeout().unwrap(), Some(Duration::from_secs(2)));
        assert!(sock.send_buffer_size().unwrap() >= 64 * 1024);

        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        opts.apply(&udp).unwrap();
        SocketOptions::new().reuseaddr(true).reuseport(true).cloexec(true).apply(&udp).unwrap();
        assert!(SockRef::from(&udp).reuse_address().unwrap());
    }
}
