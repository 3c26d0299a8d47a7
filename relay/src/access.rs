//! The relay's registry of enrolled devices, enrolment invitations and WebSocket bearer tokens.
//!
//! [`AccessRegistry`] is the pure model: every operation takes the current time (and, to mint a
//! token, a random generator) as arguments, so tests are deterministic. [`AccessStore`] keeps it
//! in `access.json` in the relay's data directory, written atomically and guarded by a lock file,
//! so that the `atelier-relay` commands run by IT staff and a running server never lose each
//! other's changes. Secrets are never stored: tokens are kept as SHA-256 hashes and compared in
//! constant time.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use atelier_core::fs::write_atomic;
use atelier_core::OfficeId;

use crate::identity::Fingerprint;

/// File name of the registry inside the data directory.
pub const ACCESS_FILE: &str = "access.json";

/// File name of the lock that serialises changes to the registry between processes.
pub const LOCK_FILE: &str = "access.lock";

/// Random bytes in a token: 256 bits, beyond any guessing, as 64 hex digits that survive being
/// pasted into a terminal, an e-mail or a URL unchanged.
pub const TOKEN_BYTES: usize = 32;

/// How long used or expired invitations are kept after they expire. They let a second use of a
/// token be reported as "token already used" rather than "unknown token", which helps IT staff
/// understand what happened; after a month nobody is asking any more.
pub const INVITE_RETENTION: Duration = Duration::days(30);

/// Longest lifetime of an enrolment token. A token is meant to be used within days; one valid
/// for months is a secret lying around in a mailbox.
pub const MAX_TOKEN_TTL: Duration = Duration::days(30);

/// Lifetime of a WebSocket bearer token when `atelier-relay token` is not told otherwise. A
/// browser token sits in a bookmark or a configuration file, where it can leak; three months
/// means a forgotten one stops working on its own, while staff renew it four times a year.
pub const DEFAULT_WS_TOKEN_TTL: Duration = Duration::days(90);

/// Longest lifetime of a WebSocket bearer token: a year, renewed at least once a year.
pub const MAX_WS_TOKEN_TTL: Duration = Duration::days(366);

/// Hex digits of a token's hash shown as its id (`atelier-relay tokens`, `revoke --token`):
/// 48 bits tell apart the few hundred tokens a relay ever issues, and say nothing useful about
/// the token itself (it is a prefix of its SHA-256).
pub const TOKEN_ID_HEX: usize = 12;

/// Version of the `access.json` format, checked on load.
const FORMAT_VERSION: u32 = 1;

/// Errors of the access registry.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The office id does not have the `caue-<département>` form.
    #[error(
        "invalid office id {0:?}: expected caue- followed by a département code (01 to 95, 2A, 2B, 971 to 974, 976)"
    )]
    InvalidOffice(String),
    /// The token is not 64 hex digits.
    #[error("malformed token: expected {} hex digits", TOKEN_BYTES * 2)]
    MalformedToken,
    /// No invitation or bearer token has this value.
    #[error("unknown token")]
    UnknownToken,
    /// The invitation was already redeemed by another device.
    #[error("token already used")]
    TokenUsed,
    /// The invitation expired before it was redeemed.
    #[error("token expired")]
    TokenExpired,
    /// The invitation or bearer token was revoked with its office.
    #[error("token revoked")]
    TokenRevoked,
    /// The requested lifetime is zero, negative or too long.
    #[error("token lifetime must be between 1 second and {} days", MAX_TOKEN_TTL.whole_days())]
    InvalidTtl,
    /// The requested WebSocket token lifetime is zero, negative or too long.
    #[error("websocket token lifetime must be between 1 second and {} days", MAX_WS_TOKEN_TTL.whole_days())]
    InvalidWsTtl,
    /// No WebSocket token has this id.
    #[error("no websocket token has the id {0}")]
    UnknownTokenId(String),
    /// Several WebSocket tokens start with this id.
    #[error("several websocket tokens start with {0}: give more digits")]
    AmbiguousTokenId(String),
    /// No device has this fingerprint.
    #[error("unknown device {0}")]
    UnknownDevice(Fingerprint),
    /// The device was revoked.
    #[error("device {0} is revoked")]
    DeviceRevoked(Fingerprint),
    /// The device is already enrolled (for the office named), so the token was not used.
    #[error("device {fingerprint} is already enrolled for {office}")]
    AlreadyEnrolled {
        /// The device.
        fingerprint: Fingerprint,
        /// The office it belongs to.
        office: String,
    },
    /// The registry file or its lock could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The registry file is not valid.
    #[error("cannot parse {path}")]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The registry file was written by a newer relay.
    #[error("{path} has format version {found}, this relay reads version {FORMAT_VERSION}")]
    UnsupportedVersion {
        /// The file involved.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
}

/// Checks an office id and returns it in canonical form (`caue-2A`, `caue-15`, `caue-974`).
///
/// Offices stay plain strings in this crate, behind this one function: the rule itself is
/// atelier-core's [`OfficeId`] (a `caue-` prefix and a code from its table of départements),
/// so the relay and the replicas agree on which offices exist. This adds only leniency for
/// typing: surrounding spaces and an upper-case prefix.
pub fn parse_office(input: &str) -> Result<String, AccessError> {
    let invalid = || AccessError::InvalidOffice(input.to_owned());
    let trimmed = input.trim();
    let code = trimmed
        .get(..5)
        .filter(|prefix| prefix.eq_ignore_ascii_case("caue-"))
        .and_then(|_| trimmed.get(5..))
        .ok_or_else(invalid)?;
    let office: OfficeId = format!("caue-{code}").parse().map_err(|_| invalid())?;
    Ok(office.into())
}

/// An enrolled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Fingerprint of the device's certificate.
    pub fingerprint: Fingerprint,
    /// The office it belongs to, e.g. `caue-15`.
    pub office: String,
    /// Whether it may only read.
    pub read_only: bool,
    /// When it redeemed its invitation.
    #[serde(with = "rfc3339")]
    pub enrolled_at: OffsetDateTime,
    /// Whether it was revoked; revoked devices are kept so they cannot enrol again.
    pub revoked: bool,
}

/// What a WebSocket bearer token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsGrant {
    /// The office the browser client acts for.
    pub office: String,
    /// Whether it may only read.
    pub read_only: bool,
    /// The token's id (see [`TOKEN_ID_HEX`]), to name it in logs and to revoke it.
    pub id: String,
}

/// A WebSocket bearer token as `atelier-relay tokens` lists it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WsTokenInfo {
    /// Its id: the first [`TOKEN_ID_HEX`] hex digits of its SHA-256.
    pub id: String,
    /// The office it was issued for.
    pub office: String,
    /// Whether it only reads.
    pub read_only: bool,
    /// When it was issued.
    #[serde(with = "rfc3339")]
    pub issued_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// What [`AccessRegistry::revoke_office`] revoked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Devices newly revoked.
    pub devices: usize,
    /// Unused invitations cancelled.
    pub invites: usize,
    /// WebSocket tokens revoked.
    pub ws_tokens: usize,
}

/// The registry itself, as stored in `access.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRegistry {
    version: u32,
    devices: BTreeMap<Fingerprint, Device>,
    invites: Vec<Invite>,
    ws_tokens: Vec<WsToken>,
}

impl Default for AccessRegistry {
    fn default() -> Self {
        Self {
            version: FORMAT_VERSION,
            devices: BTreeMap::new(),
            invites: Vec::new(),
            ws_tokens: Vec::new(),
        }
    }
}

impl AccessRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a single-use enrolment token for `office`, valid for `ttl` from `now`, and
    /// returns it. Only its hash is kept.
    pub fn invite<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        office: &str,
        read_only: bool,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<String, AccessError> {
        let office = parse_office(office)?;
        if ttl <= Duration::ZERO || ttl > MAX_TOKEN_TTL {
            return Err(AccessError::InvalidTtl);
        }
        self.invites
            .retain(|i| i.expires_at + INVITE_RETENTION > now);
        let (token, hash) = new_token(rng);
        self.invites.push(Invite {
            token_sha256: hash,
            office,
            read_only,
            expires_at: now + ttl,
            used_by: None,
            revoked: false,
        });
        Ok(token)
    }

    /// Redeems an enrolment token for the device `fingerprint`, enrolling it.
    ///
    /// Redeeming again with the same device returns the same enrolment (a device whose
    /// connection dropped before it read the answer may retry); any other device gets
    /// "token already used". A device that is already enrolled does not consume the token.
    pub fn redeem(
        &mut self,
        token: &str,
        fingerprint: &Fingerprint,
        now: OffsetDateTime,
    ) -> Result<Device, AccessError> {
        let hash = parse_token(token)?;
        let invite = self
            .invites
            .iter_mut()
            .find(|i| i.token_sha256.matches(&hash))
            .ok_or(AccessError::UnknownToken)?;
        if invite.revoked {
            return Err(AccessError::TokenRevoked);
        }
        if let Some(used_by) = invite.used_by {
            return match self.devices.get(fingerprint) {
                Some(device) if used_by == *fingerprint && !device.revoked => Ok(device.clone()),
                _ => Err(AccessError::TokenUsed),
            };
        }
        if now >= invite.expires_at {
            return Err(AccessError::TokenExpired);
        }
        if let Some(device) = self.devices.get(fingerprint) {
            return Err(if device.revoked {
                AccessError::DeviceRevoked(*fingerprint)
            } else {
                AccessError::AlreadyEnrolled {
                    fingerprint: *fingerprint,
                    office: device.office.clone(),
                }
            });
        }
        invite.used_by = Some(*fingerprint);
        let device = Device {
            fingerprint: *fingerprint,
            office: invite.office.clone(),
            read_only: invite.read_only,
            enrolled_at: now,
            revoked: false,
        };
        self.devices.insert(*fingerprint, device.clone());
        Ok(device)
    }

    /// Revokes every device, pending invitation and WebSocket token of `office`.
    pub fn revoke_office(&mut self, office: &str) -> Result<Revoked, AccessError> {
        let office = parse_office(office)?;
        let mut revoked = Revoked::default();
        for device in self.devices.values_mut() {
            if device.office == office && !device.revoked {
                device.revoked = true;
                revoked.devices += 1;
            }
        }
        for invite in &mut self.invites {
            if invite.office == office && invite.used_by.is_none() && !invite.revoked {
                invite.revoked = true;
                revoked.invites += 1;
            }
        }
        for token in &mut self.ws_tokens {
            if token.office == office && !token.revoked {
                token.revoked = true;
                revoked.ws_tokens += 1;
            }
        }
        Ok(revoked)
    }

    /// Revokes one device and returns it.
    pub fn revoke_device(&mut self, fingerprint: &Fingerprint) -> Result<Device, AccessError> {
        let device = self
            .devices
            .get_mut(fingerprint)
            .ok_or(AccessError::UnknownDevice(*fingerprint))?;
        device.revoked = true;
        Ok(device.clone())
    }

    /// The enrolled, unrevoked device with this fingerprint.
    pub fn authorize(&self, fingerprint: &Fingerprint) -> Result<Device, AccessError> {
        match self.devices.get(fingerprint) {
            None => Err(AccessError::UnknownDevice(*fingerprint)),
            Some(device) if device.revoked => Err(AccessError::DeviceRevoked(*fingerprint)),
            Some(device) => Ok(device.clone()),
        }
    }

    /// Creates a WebSocket bearer token for a browser client of `office`, valid for `ttl` from
    /// `now` (at most [`MAX_WS_TOKEN_TTL`]), and returns it. It is also revoked with its office.
    pub fn issue_ws_token<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        office: &str,
        read_only: bool,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<String, AccessError> {
        let office = parse_office(office)?;
        if ttl <= Duration::ZERO || ttl > MAX_WS_TOKEN_TTL {
            return Err(AccessError::InvalidWsTtl);
        }
        let (token, hash) = new_token(rng);
        self.ws_tokens.push(WsToken {
            token_sha256: hash,
            office,
            read_only,
            issued_at: now,
            expires_at: Some(now + ttl),
            revoked: false,
        });
        Ok(token)
    }

    /// What a WebSocket bearer token grants at `now`, if it is known, unexpired and not revoked.
    pub fn authorize_ws_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<WsGrant, AccessError> {
        self.authorize_ws_hash(&parse_token(token)?, now)
    }

    /// [`AccessRegistry::authorize_ws_token`] for a token already hashed (a live session's).
    pub(crate) fn authorize_ws_hash(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<WsGrant, AccessError> {
        let found = self
            .ws_tokens
            .iter()
            .find(|t| t.token_sha256.matches(hash))
            .ok_or(AccessError::UnknownToken)?;
        if found.revoked {
            return Err(AccessError::TokenRevoked);
        }
        if now >= found.expires_at() {
            return Err(AccessError::TokenExpired);
        }
        Ok(WsGrant {
            office: found.office.clone(),
            read_only: found.read_only,
            id: found.token_sha256.id(),
        })
    }

    /// Revokes the one WebSocket token whose id starts with `id` (at least a few hex digits).
    pub fn revoke_ws_token(&mut self, id: &str) -> Result<WsTokenInfo, AccessError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AccessError::UnknownTokenId(id));
        }
        let mut found = self
            .ws_tokens
            .iter_mut()
            .filter(|t| hex::encode(t.token_sha256.0).starts_with(&id));
        let token = found
            .next()
            .ok_or_else(|| AccessError::UnknownTokenId(id.clone()))?;
        if found.next().is_some() {
            return Err(AccessError::AmbiguousTokenId(id));
        }
        token.revoked = true;
        Ok(token.info())
    }

    /// Every WebSocket token ever issued, revoked and expired ones included, oldest first.
    pub fn ws_tokens(&self) -> impl Iterator<Item = WsTokenInfo> + '_ {
        self.ws_tokens.iter().map(WsToken::info)
    }

    /// Every device ever enrolled, revoked ones included, by fingerprint.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }
}

/// The registry on disk, in a data directory. Every operation reads the file afresh under a
/// lock, so changes made by another process (a command run while the server is up) are seen
/// at once, and concurrent changes are applied one after the other.
///
/// Operations block on file I/O; async callers run them on the blocking pool.
#[derive(Debug, Clone)]
pub struct AccessStore {
    dir: PathBuf,
    /// Times `access.json` was read, shared by clones: tests check that a token check reads
    /// nothing (see [`AccessStore::loads`]).
    loads: Arc<AtomicU64>,
}

impl AccessStore {
    /// The store in `data_dir`. Nothing is read until an operation runs; a directory without
    /// `access.json` holds an empty registry.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: data_dir.into(),
            loads: Arc::default(),
        }
    }

    /// How many times this store (or a clone) read `access.json`.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Path of the registry file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(ACCESS_FILE)
    }

    /// Runs `f` on the current registry, under a shared lock.
    pub fn read<T>(&self, f: impl FnOnce(&AccessRegistry) -> T) -> Result<T, AccessError> {
        let lock = self.lock()?;
        lock.lock_shared()
            .map_err(|source| self.lock_error(source))?;
        let registry = self.load()?;
        Ok(f(&registry))
    }

    /// Runs `f` on the current registry under an exclusive lock, and saves the registry if `f`
    /// succeeds. Nothing is written when it fails.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut AccessRegistry) -> Result<T, AccessError>,
    ) -> Result<T, AccessError> {
        let lock = self.lock()?;
        lock.lock().map_err(|source| self.lock_error(source))?;
        let mut registry = self.load()?;
        let before = registry.clone();
        let value = f(&mut registry)?;
        if registry != before {
            self.save(&registry)?;
        }
        Ok(value)
    }

    fn lock(&self) -> Result<fs::File, AccessError> {
        let path = self.dir.join(LOCK_FILE);
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| AccessError::Io { path, source })
    }

    fn lock_error(&self, source: io::Error) -> AccessError {
        AccessError::Io {
            path: self.dir.join(LOCK_FILE),
            source,
        }
    }

    fn load(&self) -> Result<AccessRegistry, AccessError> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AccessRegistry::new()),
            Err(source) => return Err(AccessError::Io { path, source }),
        };
        // Read the version alone first, so that a newer file is reported as such rather than
        // as an unknown field.
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let corrupt = |source| AccessError::Corrupt {
            path: path.clone(),
            source,
        };
        let Version { version } = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if version != FORMAT_VERSION {
            return Err(AccessError::UnsupportedVersion {
                path,
                found: version,
            });
        }
        serde_json::from_slice(&bytes).map_err(corrupt)
    }

    fn save(&self, registry: &AccessRegistry) -> Result<(), AccessError> {
        let path = self.path();
        let mut bytes =
            serde_json::to_vec_pretty(registry).map_err(|source| AccessError::Corrupt {
                path: path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        // The file names devices and offices and holds token hashes: readable by the relay's
        // user only.
        write_atomic(&path, &bytes, Some(0o600)).map_err(|source| AccessError::Io { path, source })
    }
}

/// An enrolment invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    token_sha256: TokenHash,
    office: String,
    read_only: bool,
    #[serde(with = "rfc3339")]
    expires_at: OffsetDateTime,
    used_by: Option<Fingerprint>,
    revoked: bool,
}

/// A WebSocket bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsToken {
    token_sha256: TokenHash,
    office: String,
    read_only: bool,
    #[serde(with = "rfc3339")]
    issued_at: OffsetDateTime,
    /// Absent from tokens issued before tokens expired: those expire
    /// [`DEFAULT_WS_TOKEN_TTL`] after they were issued.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    expires_at: Option<OffsetDateTime>,
    revoked: bool,
}

impl WsToken {
    fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
            .unwrap_or(self.issued_at + DEFAULT_WS_TOKEN_TTL)
    }

    fn info(&self) -> WsTokenInfo {
        WsTokenInfo {
            id: self.token_sha256.id(),
            office: self.office.clone(),
            read_only: self.read_only,
            issued_at: self.issued_at,
            expires_at: self.expires_at(),
            revoked: self.revoked,
        }
    }
}

/// SHA-256 of a token's random bytes, stored as hex.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenHash([u8; 32]);

impl TokenHash {
    fn of(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// The token's id: the first [`TOKEN_ID_HEX`] hex digits of the hash.
    fn id(&self) -> String {
        let mut id = hex::encode(self.0);
        id.truncate(TOKEN_ID_HEX);
        id
    }

    /// Constant-time comparison, so response timing says nothing about how close a guess was.
    fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", hex::encode(self.0))
    }
}

impl Serialize for TokenHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&s, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(Self(bytes))
    }
}

fn new_token<R: RngCore + CryptoRng>(rng: &mut R) -> (String, TokenHash) {
    let mut secret = [0u8; TOKEN_BYTES];
    rng.fill_bytes(&mut secret);
    (hex::encode(secret), TokenHash::of(&secret))
}

pub(crate) fn parse_token(token: &str) -> Result<TokenHash, AccessError> {
    let mut secret = [0u8; TOKEN_BYTES];
    hex::decode_to_slice(token.trim(), &mut secret).map_err(|_| AccessError::MalformedToken)?;
    Ok(TokenHash::of(&secret))
}

/// [`rfc3339`] for an optional timestamp.
mod rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(
        t: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::rfc3339")] OffsetDateTime);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
    }
}

/// RFC 3339 timestamps in `access.json`, readable by the IT staff who may open it.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        let text = t.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-03-01 09:00 UTC);

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn fp(n: u8) -> Fingerprint {
        Fingerprint::from_bytes([n; 32])
    }

    #[test]
    fn office_ids_are_validated_and_canonical() {
        for (input, canonical) in [
            ("caue-15", "caue-15"),
            ("caue-01", "caue-01"),
            ("caue-95", "caue-95"),
            ("CAUE-2a", "caue-2A"),
            ("caue-2B", "caue-2B"),
            (" caue-974 ", "caue-974"),
            ("caue-971", "caue-971"),
            ("caue-976", "caue-976"),
        ] {
            assert_eq!(parse_office(input).unwrap(), canonical);
        }
        for bad in [
            "", "caue-", "caue-1", "caue-00", "caue-20", "caue-96", "caue-970", "caue-977",
            "caue-975", "caue-2C", "caue-015", "cau-15", "caue15", "caue-1é", "é", "caue-+15",
        ] {
            assert!(
                matches!(parse_office(bad), Err(AccessError::InvalidOffice(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invitation_enrols_once() {
        let mut reg = AccessRegistry::new();
        let token = reg
            .invite(&mut rng(), "caue-15", false, Duration::hours(72), NOW)
            .unwrap();
        assert_eq!(token.len(), 64);
        let device = reg
            .redeem(&token, &fp(1), NOW + Duration::hours(1))
            .unwrap();
        assert_eq!(device.office, "caue-15");
        assert!(!device.read_only);
        assert_eq!(reg.authorize(&fp(1)).unwrap(), device);
        // The same device may retry; another may not.
        assert_eq!(reg.redeem(&token, &fp(1), NOW).unwrap(), device);
        let err = reg.redeem(&token, &fp(2), NOW).unwrap_err();
        assert_eq!(err.to_string(), "token already used");
        assert!(matches!(
            reg.authorize(&fp(2)),
            Err(AccessError::UnknownDevice(_))
        ));
    }

    #[test]
    fn expired_unknown_and_malformed_tokens_are_refused() {
        let mut reg = AccessRegistry::new();
        let token = reg
            .invite(&mut rng(), "caue-15", true, Duration::hours(72), NOW)
            .unwrap();
        let err = reg
            .redeem(&token, &fp(1), NOW + Duration::hours(72))
            .unwrap_err();
        assert_eq!(err.to_string(), "token expired");
        let err = reg.redeem(&"0".repeat(64), &fp(1), NOW).unwrap_err();
        assert_eq!(err.to_string(), "unknown token");
        let err = reg.redeem("not a token", &fp(1), NOW).unwrap_err();
        assert!(matches!(err, AccessError::MalformedToken), "{err}");
        let err = reg
            .invite(&mut rng(), "caue-15", true, Duration::ZERO, NOW)
            .unwrap_err();
        assert!(matches!(err, AccessError::InvalidTtl), "{err}");
        let err = reg
            .invite(&mut rng(), "caue-15", true, Duration::days(31), NOW)
            .unwrap_err();
        assert!(matches!(err, AccessError::InvalidTtl), "{err}");
    }

    #[test]
    fn an_enrolled_device_does_not_consume_another_token() {
        let mut reg = AccessRegistry::new();
        let mut rng = rng();
        let first = reg
            .invite(&mut rng, "caue-15", false, Duration::hours(1), NOW)
            .unwrap();
        let second = reg
            .invite(&mut rng, "caue-63", false, Duration::hours(1), NOW)
            .unwrap();
        reg.redeem(&first, &fp(1), NOW).unwrap();
        let err = reg.redeem(&second, &fp(1), NOW).unwrap_err();
        assert!(matches!(err, AccessError::AlreadyEnrolled { .. }), "{err}");
        assert_eq!(reg.redeem(&second, &fp(2), NOW).unwrap().office, "caue-63");
    }

    #[test]
    fn revoking_an_office_revokes_devices_invites_and_ws_tokens() {
        let mut reg = AccessRegistry::new();
        let mut rng = rng();
        let t1 = reg
            .invite(&mut rng, "caue-15", false, Duration::hours(1), NOW)
            .unwrap();
        let pending = reg
            .invite(&mut rng, "caue-15", false, Duration::hours(1), NOW)
            .unwrap();
        let other = reg
            .invite(&mut rng, "caue-63", false, Duration::hours(1), NOW)
            .unwrap();
        let ws = reg
            .issue_ws_token(&mut rng, "caue-15", true, Duration::days(1), NOW)
            .unwrap();
        reg.redeem(&t1, &fp(1), NOW).unwrap();
        reg.redeem(&other, &fp(3), NOW).unwrap();
        let grant = reg.authorize_ws_token(&ws, NOW).unwrap();
        assert_eq!((grant.office.as_str(), grant.read_only), ("caue-15", true));

        let revoked = reg.revoke_office("caue-15").unwrap();
        assert_eq!(
            revoked,
            Revoked {
                devices: 1,
                invites: 1,
                ws_tokens: 1
            }
        );
        assert!(matches!(
            reg.authorize(&fp(1)),
            Err(AccessError::DeviceRevoked(_))
        ));
        assert!(matches!(
            reg.redeem(&pending, &fp(2), NOW),
            Err(AccessError::TokenRevoked)
        ));
        assert!(matches!(
            reg.authorize_ws_token(&ws, NOW),
            Err(AccessError::TokenRevoked)
        ));
        assert!(reg.authorize(&fp(3)).is_ok());
        // A revoked device cannot come back with a fresh invitation.
        let fresh = reg
            .invite(&mut rng, "caue-15", false, Duration::hours(1), NOW)
            .unwrap();
        assert!(matches!(
            reg.redeem(&fresh, &fp(1), NOW),
            Err(AccessError::DeviceRevoked(_))
        ));
        reg.revoke_device(&fp(3)).unwrap();
        assert!(reg.authorize(&fp(3)).is_err());
        assert!(matches!(
            reg.revoke_device(&fp(9)),
            Err(AccessError::UnknownDevice(_))
        ));
    }

    #[test]
    fn ws_tokens_are_checked() {
        let mut reg = AccessRegistry::new();
        assert!(matches!(
            reg.authorize_ws_token(&"ab".repeat(32), NOW),
            Err(AccessError::UnknownToken)
        ));
        let token = reg
            .issue_ws_token(&mut rng(), "caue-2A", false, Duration::days(1), NOW)
            .unwrap();
        assert_eq!(
            reg.authorize_ws_token(&token, NOW).unwrap().office,
            "caue-2A"
        );
        assert!(matches!(
            reg.authorize_ws_token("xyz", NOW),
            Err(AccessError::MalformedToken)
        ));
        for ttl in [Duration::ZERO, MAX_WS_TOKEN_TTL + Duration::days(1)] {
            assert!(matches!(
                reg.issue_ws_token(&mut rng(), "caue-2A", false, ttl, NOW),
                Err(AccessError::InvalidWsTtl)
            ));
        }
    }

    #[test]
    fn ws_tokens_expire() {
        let mut reg = AccessRegistry::new();
        let token = reg
            .issue_ws_token(&mut rng(), "caue-15", false, Duration::hours(2), NOW)
            .unwrap();
        assert!(reg
            .authorize_ws_token(&token, NOW + Duration::hours(1))
            .is_ok());
        assert!(matches!(
            reg.authorize_ws_token(&token, NOW + Duration::hours(2)),
            Err(AccessError::TokenExpired)
        ));
        // A token written before tokens expired lasts the default lifetime from its issue.
        reg.ws_tokens[0].expires_at = None;
        let late = NOW + DEFAULT_WS_TOKEN_TTL;
        assert!(reg
            .authorize_ws_token(&token, late - Duration::hours(1))
            .is_ok());
        assert!(reg.authorize_ws_token(&token, late).is_err());
    }

    #[test]
    fn one_ws_token_is_revoked_by_its_id() {
        let mut reg = AccessRegistry::new();
        let mut rng = rng();
        let first = reg
            .issue_ws_token(&mut rng, "caue-15", false, Duration::days(1), NOW)
            .unwrap();
        let second = reg
            .issue_ws_token(&mut rng, "caue-15", false, Duration::days(1), NOW)
            .unwrap();
        let id = reg.authorize_ws_token(&first, NOW).unwrap().id;
        assert_eq!(id.len(), TOKEN_ID_HEX);
        assert!(!first.contains(&id) && !second.contains(&id));
        let revoked = reg.revoke_ws_token(&id.to_uppercase()).unwrap();
        assert!(revoked.revoked);
        assert!(matches!(
            reg.authorize_ws_token(&first, NOW),
            Err(AccessError::TokenRevoked)
        ));
        assert!(reg.authorize_ws_token(&second, NOW).is_ok());
        assert!(matches!(
            reg.revoke_ws_token("ffffffffffff"),
            Err(AccessError::UnknownTokenId(_)) | Err(AccessError::AmbiguousTokenId(_))
        ));
        assert!(matches!(
            reg.revoke_ws_token("x"),
            Err(AccessError::UnknownTokenId(_))
        ));
        let listed: Vec<_> = reg.ws_tokens().collect();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].expires_at, NOW + Duration::days(1));
    }

    #[test]
    fn old_invitations_are_pruned() {
        let mut reg = AccessRegistry::new();
        let mut rng = rng();
        let old = reg
            .invite(&mut rng, "caue-15", false, Duration::hours(1), NOW)
            .unwrap();
        let later = NOW + INVITE_RETENTION + Duration::hours(2);
        reg.invite(&mut rng, "caue-15", false, Duration::hours(1), later)
            .unwrap();
        assert_eq!(reg.invites.len(), 1);
        assert!(matches!(
            reg.redeem(&old, &fp(1), later),
            Err(AccessError::UnknownToken)
        ));
    }

    #[test]
    fn store_persists_secrets_only_as_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::new(dir.path());
        assert_eq!(store.read(|r| r.devices().count()).unwrap(), 0);
        let token = store
            .update(|r| r.invite(&mut rng(), "caue-15", false, Duration::hours(1), NOW))
            .unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(&token), "{text}");
        assert!(text.contains("2025-03-01T10:00:00Z"), "{text}");

        // A failed operation writes nothing.
        let before = fs::read(store.path()).unwrap();
        assert!(store
            .update(|r| r.redeem(&"0".repeat(64), &fp(1), NOW))
            .is_err());
        assert_eq!(fs::read(store.path()).unwrap(), before);

        let device = store.update(|r| r.redeem(&token, &fp(1), NOW)).unwrap();
        let reopened = AccessStore::new(dir.path());
        assert_eq!(
            reopened.read(|r| r.authorize(&fp(1))).unwrap().unwrap(),
            device
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn store_reports_corrupt_and_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::new(dir.path());
        fs::write(store.path(), b"{ not json").unwrap();
        assert!(matches!(
            store.read(|_| ()),
            Err(AccessError::Corrupt { .. })
        ));
        fs::write(
            store.path(),
            br#"{"version":2,"devices":{},"invites":[],"ws_tokens":[]}"#,
        )
        .unwrap();
        assert!(matches!(
            store.read(|_| ()),
            Err(AccessError::UnsupportedVersion { found: 2, .. })
        ));
    }
}
