//! Admission of incoming QUIC connections: which Initials are accepted, answered with a Retry
//! (address validation) or refused, so that a flood of half-open handshakes, spoofed or not,
//! cannot hold the slots enrolled offices need.
//!
//! A connection is *handshaking* from its accepted Initial until its `Hello` is authorized,
//! then *established*. Handshaking connections may hold at most `max - reserved` slots: the
//! reserved share can only be reached by connections that proved an enrolled identity.

use std::collections::HashMap;
use std::net::IpAddr;

/// Handshakes in progress above which an Initial from an address not yet validated gets a
/// Retry instead of a connection. A spoofed source never receives the Retry token, so it never
/// holds a slot; a real client pays one round trip. 32 is far above what ~90 offices
/// reconnecting at once after a relay restart keep in flight (each handshake lasts one or two
/// round trips), so in normal operation nobody pays it. Lowered to half the handshake share
/// for small caps (see [`Limits::for_max`]).
pub const RETRY_ABOVE_HANDSHAKES: usize = 32;

/// Most handshakes in progress from one IP address. An office behind one NAT has a few
/// devices, and an agent opens one connection at a time; 8 leaves room for a whole office
/// restarting together, while one address flooding real (validated) handshakes holds no more.
/// Only validated addresses are refused for it: an unvalidated one over it gets a Retry, so
/// a spoofer cannot spend a victim's share.
pub const MAX_HANDSHAKES_PER_IP: usize = 8;

/// One slot in this many is kept for enrolled identities (connections whose `Hello` was
/// authorized): handshaking connections can never hold more than the rest. A quarter (128 of
/// the default 512) still fits every CAUE office's devices syncing through a flood.
pub const RESERVED_SHARE_DIVISOR: usize = 4;

/// The admission thresholds for one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cap on connections, handshaking and established together.
    pub max_connections: usize,
    /// Cap on handshaking connections: `max_connections` minus the share reserved for
    /// enrolled identities.
    pub max_handshakes: usize,
    /// Handshakes in progress from which unvalidated Initials get a Retry.
    pub retry_above: usize,
    /// Cap on handshakes in progress per source IP.
    pub per_ip: usize,
}

impl Limits {
    /// The limits for a server capped at `max_connections` (at least 1): a quarter reserved
    /// (rounded down), Retry from [`RETRY_ABOVE_HANDSHAKES`] or half the handshake share if
    /// smaller, [`MAX_HANDSHAKES_PER_IP`] per address.
    pub fn for_max(max_connections: usize) -> Self {
        let max_connections = max_connections.max(1);
        let reserved = max_connections / RESERVED_SHARE_DIVISOR;
        let max_handshakes = (max_connections - reserved).max(1);
        Self {
            max_connections,
            max_handshakes,
            retry_above: RETRY_ABOVE_HANDSHAKES.min(max_handshakes / 2),
            per_ip: MAX_HANDSHAKES_PER_IP,
        }
    }
}

/// What to do with one Initial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the handshake (and count it, see [`Admission::admit`]).
    Accept,
    /// Ask the client to prove its address with a Retry token; no state is kept.
    Retry,
    /// Refuse at once, for this reason.
    Refuse(Refusal),
}

/// Why an Initial was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    Full,
    /// The handshake share is taken (the rest is reserved for enrolled identities).
    HandshakesFull,
    /// This address already has its share of handshakes in progress.
    PerAddress,
}

impl Refusal {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "too many connections",
            Refusal::HandshakesFull => "too many handshakes in progress",
            Refusal::PerAddress => "too many handshakes from this address",
        }
    }

    /// The `reason` label of the relay's `refusals` metric.
    pub fn metric(self) -> &'static str {
        match self {
            Refusal::Full => "too_many_connections",
            Refusal::HandshakesFull => "too_many_handshakes",
            Refusal::PerAddress => "handshakes_per_address",
        }
    }
}

/// The counters behind the decisions. Every [`Admission::admit`] is matched by exactly one
/// [`Admission::establish`] or [`Admission::end_handshake`], and every `establish` by one
/// [`Admission::end_established`].
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    handshaking: usize,
    established: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            handshaking: 0,
            established: 0,
            per_ip: HashMap::new(),
        }
    }

    /// What to do with an Initial from `ip`, whose address quinn has or has not validated.
    pub fn decide(&self, ip: IpAddr, validated: bool) -> Decision {
        let limits = &self.limits;
        if self.handshaking + self.established >= limits.max_connections {
            return Decision::Refuse(Refusal::Full);
        }
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        if !validated && (self.handshaking >= limits.retry_above || from_ip >= limits.per_ip) {
            return Decision::Retry;
        }
        if self.handshaking >= limits.max_handshakes {
            return Decision::Refuse(Refusal::HandshakesFull);
        }
        if from_ip >= limits.per_ip {
            return Decision::Refuse(Refusal::PerAddress);
        }
        Decision::Accept
    }

    /// Counts an accepted handshake from `ip`.
    pub fn admit(&mut self, ip: IpAddr) {
        self.handshaking += 1;
        *self.per_ip.entry(ip).or_insert(0) += 1;
    }

    /// The handshake from `ip` ended with an authorized `Hello`: it moves to the established
    /// connections, which may use the reserved share.
    pub fn establish(&mut self, ip: IpAddr) {
        self.end_handshake(ip);
        self.established += 1;
    }

    /// The handshake from `ip` ended otherwise (failure, timeout, enrolment answered, refusal).
    pub fn end_handshake(&mut self, ip: IpAddr) {
        self.handshaking = self.handshaking.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// An established connection ended.
    pub fn end_established(&mut self) {
        self.established = self.established.saturating_sub(1);
    }

    /// Handshakes in progress.
    pub fn handshaking(&self) -> usize {
        self.handshaking
    }

    /// Established connections.
    pub fn established(&self) -> usize {
        self.established
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn default_limits_reserve_a_quarter_and_retry_from_32() {
        let limits = Limits::for_max(512);
        assert_eq!(limits.max_handshakes, 384);
        assert_eq!(limits.retry_above, RETRY_ABOVE_HANDSHAKES);
        assert_eq!(limits.per_ip, MAX_HANDSHAKES_PER_IP);
        let small = Limits::for_max(8);
        assert_eq!((small.max_handshakes, small.retry_above), (6, 3));
        assert_eq!(Limits::for_max(1).max_handshakes, 1);
        assert_eq!(Limits::for_max(0).max_connections, 1);
    }

    #[test]
    fn unvalidated_initials_get_a_retry_once_handshakes_pile_up() {
        let mut a = Admission::new(Limits::for_max(512));
        for i in 0..32 {
            assert_eq!(a.decide(ip(i), false), Decision::Accept);
            a.admit(ip(i));
        }
        assert_eq!(a.decide(ip(100), false), Decision::Retry);
        // The same client back with its token is let in.
        assert_eq!(a.decide(ip(100), true), Decision::Accept);
        // Handshakes ending brings the threshold back.
        a.end_handshake(ip(0));
        assert_eq!(a.decide(ip(100), false), Decision::Accept);
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_a_spoofer_cannot_spend_it() {
        let mut a = Admission::new(Limits::for_max(512));
        let office = ip(7);
        for _ in 0..MAX_HANDSHAKES_PER_IP {
            assert_eq!(a.decide(office, true), Decision::Accept);
            a.admit(office);
        }
        assert_eq!(
            a.decide(office, true),
            Decision::Refuse(Refusal::PerAddress)
        );
        // Unvalidated: a Retry, which only the real owner of the address can answer.
        assert_eq!(a.decide(office, false), Decision::Retry);
        assert_eq!(a.decide(ip(8), true), Decision::Accept);
        a.end_handshake(office);
        assert_eq!(a.decide(office, true), Decision::Accept);
    }

    #[test]
    fn handshakes_never_take_the_share_reserved_for_enrolled_identities() {
        let mut a = Admission::new(Limits::for_max(8));
        // Six validated handshakes from six addresses fill the handshake share.
        for i in 0..6 {
            assert_eq!(a.decide(ip(i), true), Decision::Accept);
            a.admit(ip(i));
        }
        assert_eq!(
            a.decide(ip(50), true),
            Decision::Refuse(Refusal::HandshakesFull)
        );
        // Two of them turn out enrolled: their slots move to the established side, and two
        // more handshakes may start, up to the total cap.
        a.establish(ip(0));
        a.establish(ip(1));
        assert_eq!((a.handshaking(), a.established()), (4, 2));
        for i in 10..12 {
            assert_eq!(a.decide(ip(i), true), Decision::Accept);
            a.admit(ip(i));
        }
        assert_eq!(a.decide(ip(50), true), Decision::Refuse(Refusal::Full));
        a.end_established();
        assert_eq!(
            a.decide(ip(50), true),
            Decision::Refuse(Refusal::HandshakesFull)
        );
        a.end_handshake(ip(2));
        assert_eq!(a.decide(ip(50), true), Decision::Accept);
    }

    #[test]
    fn a_full_server_refuses_even_unvalidated_initials() {
        let mut a = Admission::new(Limits::for_max(2));
        a.admit(ip(1));
        a.establish(ip(1));
        a.admit(ip(2));
        assert_eq!(a.decide(ip(3), false), Decision::Refuse(Refusal::Full));
    }
}
