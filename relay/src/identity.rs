//! A node's TLS identity: an Ed25519 key pair, its self-signed certificate and its fingerprint.
//!
//! Atelier does not use certificate authorities. Every relay, office replica and device holds a
//! self-signed certificate, and peers recognise each other by the SHA-256 of that certificate's
//! DER bytes (the [`Fingerprint`]): the relay pins enrolled devices by fingerprint, devices pin the
//! relay by fingerprint. The identity is kept on disk as two DER files in a data directory.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use atelier_core::fs::write_atomic;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// File name of the certificate, DER-encoded, inside the identity directory.
pub const CERT_FILE: &str = "identity.crt.der";
/// File name of the PKCS#8 private key, DER-encoded, inside the identity directory.
pub const KEY_FILE: &str = "identity.key.der";

/// Subject alternative name written into every certificate. Nobody checks it (peers are pinned
/// by fingerprint), but TLS clients must send some server name, and this is the one they send.
pub const TLS_NAME: &str = "atelier";

/// Errors from creating, loading or saving an [`Identity`].
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file of the identity could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// One of the two identity files exists without the other.
    #[error("incomplete identity in {dir}: {present} exists but {missing} does not")]
    Incomplete {
        /// The identity directory.
        dir: PathBuf,
        /// The file that exists.
        present: &'static str,
        /// The file that is missing.
        missing: &'static str,
    },
    /// The directory holds no identity at all.
    #[error("no identity in {0}")]
    Missing(PathBuf),
    /// The private key file can be read by other users.
    #[error(
        "private key {path} is accessible to other users (mode {mode:o}); run chmod 600 on it"
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key or certificate bytes are not usable, or do not belong together.
    #[error("invalid identity: {0}")]
    Invalid(#[source] rustls::Error),
    /// Key or certificate generation failed.
    #[error("cannot generate identity")]
    Generate(#[from] rcgen::Error),
}

/// A key pair with its self-signed certificate.
///
/// The private key never leaves this type except to build TLS configurations, and `Debug`
/// prints only the fingerprint.
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    fingerprint: Fingerprint,
}

impl Identity {
    /// Generates a fresh Ed25519 identity in memory.
    pub fn generate() -> Result<Self, IdentityError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut params = rcgen::CertificateParams::new(vec![TLS_NAME.to_owned()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, TLS_NAME);
        let cert = params.self_signed(&key_pair)?;
        let key = PrivatePkcs8KeyDer::from(key_pair.serialize_der());
        Self::from_der(cert.der().to_vec(), key.secret_pkcs8_der().to_vec())
    }

    /// Builds an identity from DER bytes, checking that the key parses and matches the
    /// certificate's public key.
    pub fn from_der(cert: Vec<u8>, key: Vec<u8>) -> Result<Self, IdentityError> {
        let cert = CertificateDer::from(cert);
        let key = PrivatePkcs8KeyDer::from(key);
        let certified = CertifiedKey::from_der(
            vec![cert.clone()],
            PrivateKeyDer::Pkcs8(key.clone_key()),
            &crypto_provider(),
        )
        .map_err(IdentityError::Invalid)?;
        certified.keys_match().map_err(IdentityError::Invalid)?;
        let fingerprint = Fingerprint::of_certificate(&cert);
        Ok(Self {
            cert,
            key,
            fingerprint,
        })
    }

    /// Loads the identity stored in `dir`, or creates and stores a new one if the directory
    /// holds none. A directory holding only one of the two files is an error: silently
    /// replacing a key would break every peer that pinned it.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        match Self::load(dir) {
            Err(IdentityError::Missing(_)) => {
                let identity = Self::generate()?;
                identity.save(dir)?;
                Ok(identity)
            }
            other => other,
        }
    }

    /// Loads the identity stored in `dir`.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let cert = read_optional(&cert_path)?;
        let key = read_optional(&key_path)?;
        match (cert, key) {
            (Some(cert), Some(key)) => {
                check_key_permissions(&key_path)?;
                Self::from_der(cert, key)
            }
            (None, None) => Err(IdentityError::Missing(dir.to_owned())),
            (Some(_), None) => Err(IdentityError::Incomplete {
                dir: dir.to_owned(),
                present: CERT_FILE,
                missing: KEY_FILE,
            }),
            (None, Some(_)) => Err(IdentityError::Incomplete {
                dir: dir.to_owned(),
                present: KEY_FILE,
                missing: CERT_FILE,
            }),
        }
    }

    /// Writes the identity into `dir` (created if needed, mode 0700), each file atomically.
    /// The key is written first, so an interrupted save leaves a key without certificate,
    /// which [`Identity::load`] reports instead of overwriting.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        create_private_dir(dir)?;
        let key_path = dir.join(KEY_FILE);
        write_atomic(&key_path, self.key.secret_pkcs8_der(), Some(0o600)).map_err(|source| {
            IdentityError::Io {
                path: key_path,
                source,
            }
        })?;
        let cert_path = dir.join(CERT_FILE);
        write_atomic(&cert_path, self.cert.as_ref(), Some(0o644)).map_err(|source| {
            IdentityError::Io {
                path: cert_path,
                source,
            }
        })
    }

    /// The SHA-256 fingerprint of the certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The DER-encoded certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate chain and private key, as rustls wants them.
    pub(crate) fn tls_parts(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.cert.clone()],
            PrivateKeyDer::Pkcs8(self.key.clone_key()),
        )
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of a certificate's DER bytes: how Atelier names and pins a peer.
///
/// Displayed as 64 lowercase hex digits. Parsing also accepts upper case and the
/// colon-separated form (`AB:CD:…`) that `openssl x509 -fingerprint -sha256` prints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why a string is not a [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// The string does not have 64 hex digits.
    #[error("a fingerprint has 64 hex digits (SHA-256), found {0}")]
    Length(usize),
    /// A character is neither a hex digit nor a well-placed colon.
    #[error("invalid character {ch:?} at position {position} in fingerprint")]
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Its position (in characters, from 0).
        position: usize,
    },
    /// Colons are present but do not separate pairs of hex digits.
    #[error("colons in a fingerprint must separate pairs of hex digits (ab:cd:…)")]
    Separators,
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some((position, ch)) = s
            .chars()
            .enumerate()
            .find(|&(_, c)| !c.is_ascii_hexdigit() && c != ':')
        {
            return Err(FingerprintError::InvalidChar { ch, position });
        }
        // Only ASCII remains, so byte and character positions agree from here on.
        let digits: String = if s.contains(':') {
            let groups: Vec<&str> = s.split(':').collect();
            if groups.iter().any(|g| g.len() != 2) {
                return Err(FingerprintError::Separators);
            }
            groups.concat()
        } else {
            s.to_owned()
        };
        if digits.len() != 64 {
            return Err(FingerprintError::Length(digits.len()));
        }
        let mut bytes = [0u8; 32];
        // Every character was checked to be a hex digit above, so this cannot fail; the error
        // is still mapped rather than unwrapped.
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| FingerprintError::Separators)?;
        Ok(Self(bytes))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The one crypto provider of the relay crate: ring, as the workspace's rustls features say.
pub(crate) fn crypto_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Shared handle on [`crypto_provider`], for rustls builders.
pub(crate) fn shared_crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(crypto_provider())
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, IdentityError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IdentityError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| IdentityError::Io {
        path: dir.to_owned(),
        source,
    })
}

#[cfg(unix)]
fn check_key_permissions(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = fs::metadata(path).map_err(|source| IdentityError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::KeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_permissions(_path: &Path) -> Result<(), IdentityError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_through_hex() {
        let fp = Fingerprint::of_certificate(b"not really a certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert!(text
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
    }

    #[test]
    fn fingerprint_accepts_colons_and_upper_case() {
        let fp = Fingerprint::from_bytes([0xab; 32]);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(colons.parse::<Fingerprint>(), Ok(fp));
        assert_eq!(format!("  {fp}\n").parse::<Fingerprint>(), Ok(fp));
    }

    #[test]
    fn fingerprint_rejects_everything_else() {
        assert_eq!(
            "abc".parse::<Fingerprint>(),
            Err(FingerprintError::Length(3))
        );
        assert_eq!(
            "ab".repeat(33).parse::<Fingerprint>(),
            Err(FingerprintError::Length(66))
        );
        assert_eq!(
            format!("{}zz", "a".repeat(62)).parse::<Fingerprint>(),
            Err(FingerprintError::InvalidChar {
                ch: 'z',
                position: 62
            })
        );
        assert_eq!(
            format!("a:{}", "b".repeat(63)).parse::<Fingerprint>(),
            Err(FingerprintError::Separators)
        );
        assert_eq!(
            "é".parse::<Fingerprint>(),
            Err(FingerprintError::InvalidChar {
                ch: 'é',
                position: 0
            })
        );
        assert_eq!("".parse::<Fingerprint>(), Err(FingerprintError::Length(0)));
    }

    #[test]
    fn load_or_create_persists_the_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let created = Identity::load_or_create(&path).unwrap();
        let loaded = Identity::load(&path).unwrap();
        assert_eq!(created.fingerprint(), loaded.fingerprint());
        assert_eq!(
            Identity::load_or_create(&path).unwrap().fingerprint(),
            created.fingerprint()
        );
        assert_eq!(
            created.fingerprint(),
            Fingerprint::of_certificate(created.certificate())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn load_refuses_missing_or_half_identities() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Identity::load(dir.path()),
            Err(IdentityError::Missing(_))
        ));
        Identity::generate().unwrap().save(dir.path()).unwrap();
        fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::Incomplete { .. }), "{err}");
    }

    #[test]
    fn load_refuses_a_key_from_another_identity() {
        let dir = tempfile::tempdir().unwrap();
        Identity::generate().unwrap().save(dir.path()).unwrap();
        let other = tempfile::tempdir().unwrap();
        Identity::generate().unwrap().save(other.path()).unwrap();
        fs::copy(other.path().join(KEY_FILE), dir.path().join(KEY_FILE)).unwrap();
        let err = Identity::load(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::Invalid(_)), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn load_refuses_a_world_readable_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Identity::generate().unwrap().save(dir.path()).unwrap();
        let key = dir.path().join(KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, IdentityError::KeyPermissions { mode: 0o644, .. }),
            "{err}"
        );
    }
}
