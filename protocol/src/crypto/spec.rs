//! Parsing the `crypto` option (WIRE.md §3a, §3b and seed 000's `socket.crypto`).
//!
//! # Grammar
//!
//! ```text
//! option    = spec "=" key        ; "AES/CFB/NoPadding=secret", "AES-256-GCM=secret"
//!           | key                 ; a bare key: RIJNDAEL/CBC/PKCS5Padding
//! spec      = "AES-256-GCM"       ; the sealed profile (§3b)
//!           | algo [ "/" mode [ "/" padding ] ]
//! algo      = "AES" | "RIJNDAEL" | "SEED" | "DES"
//! mode      = "CBC" | "CFB"                                   ; default CBC
//! padding   = "PKCS5Padding" | "NoPadding" | "PKCS1Padding"  ; default PKCS5Padding (CBC), NoPadding (CFB)
//! key       = one or more characters, taken verbatim
//! ```
//!
//! - Names are ASCII case-insensitive; blanks around the spec and around each of its parts are
//!   ignored. The key is everything after the **first** `=`, verbatim (blanks included), so a key
//!   may contain `=` when the explicit form is used; a bare key therefore cannot contain `=`
//!   (write `RIJNDAEL/CBC/PKCS5Padding=a=b` instead).
//! - CFB never pads, so CFB with `PKCS5Padding` or `PKCS1Padding` is refused rather than
//!   silently ignored (the original ignored every padding part, a parsing bug WIRE.md fixes).
//! - An empty key is refused: it would silently encrypt under 32 zero bytes.
//!
//! The seed's Lua table form `{["ALGO/MODE/PADDING"] = key}` has spec and key apart already:
//! parse the spec with [`Profile`]'s `FromStr` and pass the key to
//! [`from_parts`](super::from_parts).

use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;

use crate::fault::{Blame, Fault};

/// A STAGE block cipher (WIRE.md §3a).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Algorithm {
    /// AES-256 (the 32-byte STAGE key in full).
    Aes,
    /// Rijndael with a 128-bit block, i.e. AES; kept apart only so a spec prints as written.
    Rijndael,
    /// KISA SEED (RFC 4269), first 16 key bytes.
    Seed,
    /// Single DES, first 8 key bytes.
    Des,
}

impl Algorithm {
    /// Every algorithm, for tests and benchmarks that cover them all.
    pub const ALL: [Algorithm; 4] = [Algorithm::Aes, Algorithm::Rijndael, Algorithm::Seed, Algorithm::Des];

    /// Block size in bytes: 16, or 8 for DES.
    pub const fn block_size(self) -> usize {
        match self {
            Algorithm::Des => 8,
            _ => 16,
        }
    }

    /// Key size in bytes the algorithm takes from the 32-byte STAGE key.
    pub const fn key_size(self) -> usize {
        match self {
            Algorithm::Aes | Algorithm::Rijndael => 32,
            Algorithm::Seed => 16,
            Algorithm::Des => 8,
        }
    }

    /// The canonical upper-case name used in specs.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Aes => "AES",
            Algorithm::Rijndael => "RIJNDAEL",
            Algorithm::Seed => "SEED",
            Algorithm::Des => "DES",
        }
    }
}

/// A block cipher mode of operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Mode {
    /// Cipher block chaining.
    Cbc,
    /// Cipher feedback with full-block feedback (CFB-128, CFB-64 for DES).
    Cfb,
}

impl Mode {
    /// The canonical upper-case name used in specs.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Cbc => "CBC",
            Mode::Cfb => "CFB",
        }
    }
}

/// How CBC plaintext is padded to whole blocks.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Padding {
    /// `PKCS5Padding`: PKCS#7 to the cipher's block size (1..=block bytes, each = the count).
    Pkcs5,
    /// `NoPadding`: CBC input must already be block-aligned; the only choice for CFB.
    None,
    /// `PKCS1Padding` as the original means it: one `0x80` byte then zeros to the block
    /// boundary (Crypto++ ONE_AND_ZEROS), always 1..=block bytes.
    Pkcs1,
}

impl Padding {
    /// The spec name (`PKCS5Padding`, `NoPadding`, `PKCS1Padding`).
    pub const fn name(self) -> &'static str {
        match self {
            Padding::Pkcs5 => "PKCS5Padding",
            Padding::None => "NoPadding",
            Padding::Pkcs1 => "PKCS1Padding",
        }
    }
}

/// A STAGE cipher spec: `ALGO/MODE/PADDING`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct CipherSpec {
    /// The block cipher.
    pub algorithm: Algorithm,
    /// The mode of operation.
    pub mode: Mode,
    /// The padding (always [`Padding::None`] with CFB).
    pub padding: Padding,
}

impl CipherSpec {
    /// What a bare key string means: `RIJNDAEL/CBC/PKCS5Padding`.
    pub const DEFAULT: CipherSpec =
        CipherSpec { algorithm: Algorithm::Rijndael, mode: Mode::Cbc, padding: Padding::Pkcs5 };

    /// A spec, checked: CFB takes no padding.
    pub fn new(algorithm: Algorithm, mode: Mode, padding: Padding) -> Result<CipherSpec, SpecError> {
        if mode == Mode::Cfb && padding != Padding::None {
            return Err(SpecError::PaddingWithCfb { padding });
        }
        Ok(CipherSpec { algorithm, mode, padding })
    }

    /// Every valid spec (4 algorithms × {CBC × 3 paddings, CFB}), for exhaustive tests.
    pub fn all() -> impl Iterator<Item = CipherSpec> {
        Algorithm::ALL.into_iter().flat_map(|algorithm| {
            [
                (Mode::Cbc, Padding::Pkcs5),
                (Mode::Cbc, Padding::None),
                (Mode::Cbc, Padding::Pkcs1),
                (Mode::Cfb, Padding::None),
            ]
            .into_iter()
            .map(move |(mode, padding)| CipherSpec { algorithm, mode, padding })
        })
    }
}

impl Default for CipherSpec {
    fn default() -> Self {
        CipherSpec::DEFAULT
    }
}

impl fmt::Display for CipherSpec {
    /// The canonical three-part form, e.g. `SEED/CFB/NoPadding`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.algorithm.name(), self.mode.name(), self.padding.name())
    }
}

impl FromStr for CipherSpec {
    type Err = SpecError;

    /// Parse `ALGO[/MODE[/PADDING]]` (see the [module grammar](self)).
    fn from_str(s: &str) -> Result<CipherSpec, SpecError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SpecError::Empty);
        }
        let count = s.split('/').count();
        if count > 3 {
            return Err(SpecError::TooManyParts { count });
        }
        let mut parts = s.split('/').map(str::trim);
        let algorithm = match nonempty(parts.next(), SpecPart::Algorithm)? {
            a if a.eq_ignore_ascii_case("AES") => Algorithm::Aes,
            a if a.eq_ignore_ascii_case("RIJNDAEL") => Algorithm::Rijndael,
            a if a.eq_ignore_ascii_case("SEED") => Algorithm::Seed,
            a if a.eq_ignore_ascii_case("DES") => Algorithm::Des,
            a => return Err(SpecError::UnknownAlgorithm { name: a.to_string() }),
        };
        let mode = match parts.next() {
            None => Mode::Cbc,
            Some(m) => match nonempty(Some(m), SpecPart::Mode)? {
                m if m.eq_ignore_ascii_case("CBC") => Mode::Cbc,
                m if m.eq_ignore_ascii_case("CFB") => Mode::Cfb,
                m => return Err(SpecError::UnknownMode { name: m.to_string() }),
            },
        };
        let padding = match parts.next() {
            None if mode == Mode::Cfb => Padding::None,
            None => Padding::Pkcs5,
            Some(p) => match nonempty(Some(p), SpecPart::Padding)? {
                p if p.eq_ignore_ascii_case("PKCS5Padding") => Padding::Pkcs5,
                p if p.eq_ignore_ascii_case("NoPadding") => Padding::None,
                p if p.eq_ignore_ascii_case("PKCS1Padding") => Padding::Pkcs1,
                p => return Err(SpecError::UnknownPadding { name: p.to_string() }),
            },
        };
        CipherSpec::new(algorithm, mode, padding)
    }
}

fn nonempty(part: Option<&str>, which: SpecPart) -> Result<&str, SpecError> {
    match part {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(SpecError::EmptyPart { part: which }),
    }
}

/// Which cipher profile a connection uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Profile {
    /// The compatible STAGE profile (§3a): fixed IV, no integrity.
    Stage(CipherSpec),
    /// The sealed profile (§3b): AES-256-GCM with counter nonces and replay rejection.
    Sealed,
}

impl Profile {
    /// The spec name of the sealed profile.
    pub const SEALED_NAME: &'static str = "AES-256-GCM";
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Profile::Stage(spec) => spec.fmt(f),
            Profile::Sealed => f.write_str(Profile::SEALED_NAME),
        }
    }
}

impl FromStr for Profile {
    type Err = SpecError;

    /// `AES-256-GCM` (any case) is [`Profile::Sealed`]; anything else is parsed as a
    /// [`CipherSpec`].
    fn from_str(s: &str) -> Result<Profile, SpecError> {
        if s.trim().eq_ignore_ascii_case(Profile::SEALED_NAME) {
            Ok(Profile::Sealed)
        } else {
            s.parse().map(Profile::Stage)
        }
    }
}

/// A parsed `crypto` option: the profile and the key string it applies to.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CryptoOption<'a> {
    /// The profile (a bare key gives `Stage(CipherSpec::DEFAULT)`).
    pub profile: Profile,
    /// The key string, verbatim.
    pub key: &'a str,
}

impl<'a> CryptoOption<'a> {
    /// Parse `spec=key` or a bare `key` (see the [module grammar](self)).
    pub fn parse(option: &'a str) -> Result<CryptoOption<'a>, SpecError> {
        let (profile, key) = match option.split_once('=') {
            Some((spec, key)) => (spec.parse()?, key),
            None => (Profile::Stage(CipherSpec::DEFAULT), option),
        };
        if key.is_empty() {
            return Err(SpecError::EmptyKey);
        }
        Ok(CryptoOption { profile, key })
    }
}

impl fmt::Debug for CryptoOption<'_> {
    /// Shows the profile only: a key does not belong in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoOption").field("profile", &self.profile).field("key", &"<redacted>").finish()
    }
}

/// A part of a `ALGO/MODE/PADDING` spec, named in errors.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum SpecPart {
    /// The `ALGO` part.
    Algorithm,
    /// The `MODE` part.
    Mode,
    /// The `PADDING` part.
    Padding,
}

impl fmt::Display for SpecPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpecPart::Algorithm => "algorithm",
            SpecPart::Mode => "mode",
            SpecPart::Padding => "padding",
        })
    }
}

/// Why a `crypto` option or spec was refused. Always the caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The spec is empty (or only blanks).
    #[error("empty cipher spec")]
    Empty,
    /// One `/`-separated part is empty, e.g. `AES//NoPadding` or `AES/`.
    #[error("empty {part} in cipher spec")]
    EmptyPart {
        /// The empty part.
        part: SpecPart,
    },
    /// The algorithm is not AES, RIJNDAEL, SEED or DES.
    #[error("unknown cipher algorithm {name:?} (expected AES, RIJNDAEL, SEED or DES)")]
    UnknownAlgorithm {
        /// The algorithm as written.
        name: String,
    },
    /// The mode is not CBC or CFB.
    #[error("unknown cipher mode {name:?} (expected CBC or CFB)")]
    UnknownMode {
        /// The mode as written.
        name: String,
    },
    /// The padding is not PKCS5Padding, NoPadding or PKCS1Padding.
    #[error("unknown padding {name:?} (expected PKCS5Padding, NoPadding or PKCS1Padding)")]
    UnknownPadding {
        /// The padding as written.
        name: String,
    },
    /// More than `ALGO/MODE/PADDING`.
    #[error("cipher spec has {count} '/'-separated parts; at most 3 (ALGO/MODE/PADDING)")]
    TooManyParts {
        /// How many parts there were.
        count: usize,
    },
    /// CFB was given a padding other than NoPadding (CFB never pads).
    #[error("CFB takes no padding, but {} was given", padding.name())]
    PaddingWithCfb {
        /// The padding that was asked for.
        padding: Padding,
    },
    /// The key string is empty.
    #[error("empty cipher key")]
    EmptyKey,
}

impl Blame for SpecError {
    fn fault(&self) -> Fault {
        Fault::Caller
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<CipherSpec, SpecError> {
        s.parse()
    }

    #[test]
    fn defaults_and_case() {
        assert_eq!(spec("aes"), Ok(CipherSpec { algorithm: Algorithm::Aes, mode: Mode::Cbc, padding: Padding::Pkcs5 }));
        assert_eq!(
            spec("Seed/cfb"),
            Ok(CipherSpec { algorithm: Algorithm::Seed, mode: Mode::Cfb, padding: Padding::None })
        );
        assert_eq!(
            spec(" des / cbc / nopadding "),
            Ok(CipherSpec { algorithm: Algorithm::Des, mode: Mode::Cbc, padding: Padding::None })
        );
        assert_eq!(spec("RIJNDAEL/CBC/PKCS1Padding").unwrap().padding, Padding::Pkcs1);
        assert_eq!(spec("rijndael/cfb/NOPADDING").unwrap().to_string(), "RIJNDAEL/CFB/NoPadding");
    }

    #[test]
    fn every_spec_round_trips_through_display() {
        for s in CipherSpec::all() {
            assert_eq!(spec(&s.to_string()), Ok(s));
        }
        assert_eq!(CipherSpec::all().count(), 16);
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert_eq!(spec(""), Err(SpecError::Empty));
        assert_eq!(spec("  "), Err(SpecError::Empty));
        assert_eq!(spec("AES//NoPadding"), Err(SpecError::EmptyPart { part: SpecPart::Mode }));
        assert_eq!(spec("AES/CBC/"), Err(SpecError::EmptyPart { part: SpecPart::Padding }));
        assert_eq!(spec("/CBC"), Err(SpecError::EmptyPart { part: SpecPart::Algorithm }));
        assert_eq!(spec("3DES"), Err(SpecError::UnknownAlgorithm { name: "3DES".into() }));
        assert_eq!(spec("AES/ECB"), Err(SpecError::UnknownMode { name: "ECB".into() }));
        assert_eq!(spec("AES/CBC/PKCS7Padding"), Err(SpecError::UnknownPadding { name: "PKCS7Padding".into() }));
        assert_eq!(spec("AES/CBC/NoPadding/x"), Err(SpecError::TooManyParts { count: 4 }));
        assert_eq!(spec("AES/CFB/PKCS5Padding"), Err(SpecError::PaddingWithCfb { padding: Padding::Pkcs5 }));
        assert_eq!(spec("AES-256-GCM"), Err(SpecError::UnknownAlgorithm { name: "AES-256-GCM".into() }));
        assert_eq!(SpecError::Empty.fault(), Fault::Caller);
    }

    #[test]
    fn profiles_and_options() {
        assert_eq!("aes-256-gcm".parse::<Profile>(), Ok(Profile::Sealed));
        let o = CryptoOption::parse("secret").unwrap();
        assert_eq!((o.profile, o.key), (Profile::Stage(CipherSpec::DEFAULT), "secret"));
        let o = CryptoOption::parse("AES/CFB/NoPadding=k=ey ").unwrap();
        assert_eq!(o.profile.to_string(), "AES/CFB/NoPadding");
        assert_eq!(o.key, "k=ey ");
        let o = CryptoOption::parse(" AES-256-GCM =key").unwrap();
        assert_eq!((o.profile, o.key), (Profile::Sealed, "key"));
        assert_eq!(CryptoOption::parse(""), Err(SpecError::EmptyKey));
        assert_eq!(CryptoOption::parse("AES="), Err(SpecError::EmptyKey));
        assert_eq!(CryptoOption::parse("=key"), Err(SpecError::Empty));
        assert_eq!(CryptoOption::parse("AEZ=key"), Err(SpecError::UnknownAlgorithm { name: "AEZ".into() }));
        let o = CryptoOption::parse("SEED=hunter2").unwrap();
        assert!(!alloc::format!("{o:?}").contains("hunter2"), "Debug must not print the key");
    }
}
