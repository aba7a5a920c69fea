//! Connection counts: broker-wide (`max.connections`) and per client address
//! (`max.connections.per.ip`), R-WIRE-12.
//!
//! A connection over a limit is accepted and closed at once, never left in the
//! listen backlog. Kafka does that for the per-address limit; at its broker-wide
//! limit its acceptor stops accepting instead, so a client's connect succeeds in the
//! kernel and then hangs until its own setup timeout. Closing at once tells the
//! client now, and it retries with its backoff.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerIp,
}

impl Refusal {
    /// The metric label and the config key that was reached.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConnectionsPerIp => "max_connections_per_ip",
        }
    }
}

/// The limits in force when a connection arrives: `max.connections` and
/// `max.connections.per.ip`, as configured or as last changed at run time. A limit
/// lowered below the connections open closes none of them; new ones wait for room.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub total: usize,
    pub per_ip: usize,
}

#[derive(Default)]
pub struct ConnectionLimits {
    open: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its slots.
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr, caps: Caps) -> Result<Slot, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= caps.total {
            return Err(Refusal::MaxConnections);
        }
        let from_ip = open.per_ip.entry(ip).or_insert(0);
        if *from_ip >= caps.per_ip {
            return Err(Refusal::MaxConnectionsPerIp);
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Slot {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        // Addresses with no connection are forgotten, so the map cannot grow with
        // every address that ever connected.
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn r_wire_12_one_address_cannot_take_every_slot() {
        let limits = ConnectionLimits::new();
        let caps = Caps {
            total: 3,
            per_ip: 2,
        };
        let a1 = limits.admit(A, caps);
        let a2 = limits.admit(A, caps);
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(
            limits.admit(A, caps).err(),
            Some(Refusal::MaxConnectionsPerIp)
        );
        let b1 = limits.admit(B, caps);
        assert!(b1.is_ok());
        assert_eq!(limits.admit(B, caps).err(), Some(Refusal::MaxConnections));
        drop(a1);
        assert!(
            limits.admit(A, caps).is_ok(),
            "a closed connection frees its slots"
        );
    }

    #[test]
    fn r_wire_12_a_lowered_cap_closes_nothing_and_admits_once_below_it() {
        let limits = ConnectionLimits::new();
        let wide = Caps {
            total: 10,
            per_ip: 3,
        };
        let (a1, a2) = (limits.admit(A, wide), limits.admit(A, wide));
        let narrow = Caps {
            total: 10,
            per_ip: 1,
        };
        assert_eq!(
            limits.admit(A, narrow).err(),
            Some(Refusal::MaxConnectionsPerIp)
        );
        drop(a1);
        assert!(limits.admit(A, narrow).is_err(), "still one open");
        drop(a2);
        assert!(limits.admit(A, narrow).is_ok());
    }

    #[test]
    fn r_wire_12_refusals_take_no_slot_and_closed_addresses_are_forgotten() {
        let limits = ConnectionLimits::new();
        let caps = Caps {
            total: 10,
            per_ip: 1,
        };
        let a = limits.admit(A, caps);
        for _ in 0..5 {
            assert!(limits.admit(A, caps).is_err());
        }
        let total = || limits.open.lock().unwrap_or_else(|p| p.into_inner()).total;
        assert_eq!(total(), 1);
        drop(a);
        assert_eq!(total(), 0);
        let open = limits.open.lock().unwrap_or_else(|p| p.into_inner());
        assert!(open.per_ip.is_empty());
    }
}
