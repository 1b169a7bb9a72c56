//! The MM7 schema versions sluice speaks: each names an XML namespace and a
//! set of `MM7Version` values its schema accepts.
//!
//! The table below was read from the `versionType` enumeration of each schema
//! in `tests/data/mm7/` (the copies 3GPP published). The value sluice sends is
//! the newest one each schema lists; every listed value is accepted inbound.
//!
//! | schema (namespace suffix) | `MM7Version` sent | also accepted                      | `DeliveryReportReq` date element |
//! |---------------------------|-------------------|------------------------------------|----------------------------------|
//! | `REL-5-MM7-1-2`           | 5.3.0             | —                                  | `Date`                           |
//! | `REL-5-MM7-1-3`           | 5.6.0             | 5.5.0, 5.3.0                       | `Date`                           |
//! | `REL-5-MM7-1-4`           | 5.8.0             | 5.6.0, 5.5.0, 5.3.0                | `TimeStamp`                      |
//! | `REL-6-MM7-1-0`           | 6.3.0             | 5.6.0, 5.5.0, 5.3.0                | `Date`                           |
//! | `REL-6-MM7-1-1`           | 6.4.0             | 6.3.0, 5.8.0 … 5.3.0               | `TimeStamp`                      |
//! | `REL-6-MM7-1-2`           | 6.5.0             | 6.4.0, 6.3.0, 5.10.0 … 5.3.0       | `Date`                           |
//! | `REL-6-MM7-1-3`           | 6.6.0             | 6.5.0 … 5.3.0                      | `Date`                           |
//! | `REL-6-MM7-1-4`           | 6.8.0             | 6.6.0 … 5.3.0                      | `Date`                           |
//!
//! The schemas disagree on the name of the date in `DeliveryReportReq`
//! (`Date` in most, `TimeStamp` in `REL-5-MM7-1-4` and `REL-6-MM7-1-1`);
//! sluice writes the one its version's schema wants and reads either.
//! `mmDeliveryStatusType` grows too: `Unrecognised` and `Deferred` from
//! `REL-6-MM7-1-1`, `DeliveryConditionNotMet` from `REL-6-MM7-1-3`.

use std::fmt;
use std::str::FromStr;

/// The namespace URI of every version, without the schema name.
pub const NAMESPACE_BASE: &str = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/";

/// The SOAP 1.1 envelope namespace.
pub const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// An MM7 schema version (a carrier pins one; it is a per-carrier setting).
///
/// # Defaults
/// [`Version::Rel6Mm7_1_4`], the newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Version {
    /// `REL-5-MM7-1-2`, MM7Version 5.3.0.
    Rel5Mm7_1_2,
    /// `REL-5-MM7-1-3`, MM7Version 5.6.0.
    Rel5Mm7_1_3,
    /// `REL-5-MM7-1-4`, MM7Version 5.8.0.
    Rel5Mm7_1_4,
    /// `REL-6-MM7-1-0`, MM7Version 6.3.0.
    Rel6Mm7_1_0,
    /// `REL-6-MM7-1-1`, MM7Version 6.4.0.
    Rel6Mm7_1_1,
    /// `REL-6-MM7-1-2`, MM7Version 6.5.0.
    Rel6Mm7_1_2,
    /// `REL-6-MM7-1-3`, MM7Version 6.6.0.
    Rel6Mm7_1_3,
    /// `REL-6-MM7-1-4`, MM7Version 6.8.0.
    #[default]
    Rel6Mm7_1_4,
}

/// Builds the namespace URI of a schema name at compile time.
macro_rules! ns {
    ($name:literal) => {
        concat!(
            "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/",
            $name
        )
    };
}

impl Version {
    /// Every supported version, oldest first.
    pub const ALL: [Version; 8] = [
        Version::Rel5Mm7_1_2,
        Version::Rel5Mm7_1_3,
        Version::Rel5Mm7_1_4,
        Version::Rel6Mm7_1_0,
        Version::Rel6Mm7_1_1,
        Version::Rel6Mm7_1_2,
        Version::Rel6Mm7_1_3,
        Version::Rel6Mm7_1_4,
    ];

    /// The schema name, e.g. `REL-6-MM7-1-4` (also the name of its xsd file).
    pub const fn name(self) -> &'static str {
        match self {
            Version::Rel5Mm7_1_2 => "REL-5-MM7-1-2",
            Version::Rel5Mm7_1_3 => "REL-5-MM7-1-3",
            Version::Rel5Mm7_1_4 => "REL-5-MM7-1-4",
            Version::Rel6Mm7_1_0 => "REL-6-MM7-1-0",
            Version::Rel6Mm7_1_1 => "REL-6-MM7-1-1",
            Version::Rel6Mm7_1_2 => "REL-6-MM7-1-2",
            Version::Rel6Mm7_1_3 => "REL-6-MM7-1-3",
            Version::Rel6Mm7_1_4 => "REL-6-MM7-1-4",
        }
    }

    /// The XML namespace URI: [`NAMESPACE_BASE`] followed by [`Version::name`].
    pub const fn namespace(self) -> &'static str {
        match self {
            Version::Rel5Mm7_1_2 => ns!("REL-5-MM7-1-2"),
            Version::Rel5Mm7_1_3 => ns!("REL-5-MM7-1-3"),
            Version::Rel5Mm7_1_4 => ns!("REL-5-MM7-1-4"),
            Version::Rel6Mm7_1_0 => ns!("REL-6-MM7-1-0"),
            Version::Rel6Mm7_1_1 => ns!("REL-6-MM7-1-1"),
            Version::Rel6Mm7_1_2 => ns!("REL-6-MM7-1-2"),
            Version::Rel6Mm7_1_3 => ns!("REL-6-MM7-1-3"),
            Version::Rel6Mm7_1_4 => ns!("REL-6-MM7-1-4"),
        }
    }

    /// The `MM7Version` sluice writes: the newest value the schema lists.
    pub const fn mm7_version(self) -> &'static str {
        self.accepted_mm7_versions()[0]
    }

    /// Every `MM7Version` value the schema's `versionType` lists, newest first.
    pub const fn accepted_mm7_versions(self) -> &'static [&'static str] {
        const ALL: [&str; 10] = [
            "6.8.0", "6.6.0", "6.5.0", "6.4.0", "6.3.0", "5.10.0", "5.8.0", "5.6.0", "5.5.0",
            "5.3.0",
        ];
        match self {
            Version::Rel5Mm7_1_2 => &["5.3.0"],
            Version::Rel5Mm7_1_3 => &["5.6.0", "5.5.0", "5.3.0"],
            Version::Rel5Mm7_1_4 => &["5.8.0", "5.6.0", "5.5.0", "5.3.0"],
            Version::Rel6Mm7_1_0 => &["6.3.0", "5.6.0", "5.5.0", "5.3.0"],
            Version::Rel6Mm7_1_1 => &["6.4.0", "6.3.0", "5.8.0", "5.6.0", "5.5.0", "5.3.0"],
            Version::Rel6Mm7_1_2 => &[
                "6.5.0", "6.4.0", "6.3.0", "5.10.0", "5.8.0", "5.6.0", "5.5.0", "5.3.0",
            ],
            Version::Rel6Mm7_1_3 => &[
                "6.6.0", "6.5.0", "6.4.0", "6.3.0", "5.10.0", "5.8.0", "5.6.0", "5.5.0", "5.3.0",
            ],
            Version::Rel6Mm7_1_4 => &ALL,
        }
    }

    /// True when this version's schema lists `mm7_version` (surrounding
    /// whitespace ignored).
    pub fn accepts(self, mm7_version: &str) -> bool {
        let v = mm7_version.trim();
        self.accepted_mm7_versions().contains(&v)
    }

    /// The version whose namespace is `ns` (exact match), if supported.
    pub fn from_namespace(ns: &str) -> Option<Version> {
        let name = ns.trim().strip_prefix(NAMESPACE_BASE)?;
        Version::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The element carrying the date in `DeliveryReportReq` (`Date` or
    /// `TimeStamp`, as the schema says).
    pub const fn delivery_report_date_element(self) -> &'static str {
        match self {
            Version::Rel5Mm7_1_4 | Version::Rel6Mm7_1_1 => "TimeStamp",
            _ => "Date",
        }
    }

    /// True when the schema's `mmDeliveryStatusType` lists `Unrecognised`
    /// and `Deferred`.
    pub const fn has_unrecognised_and_deferred(self) -> bool {
        matches!(
            self,
            Version::Rel6Mm7_1_1
                | Version::Rel6Mm7_1_2
                | Version::Rel6Mm7_1_3
                | Version::Rel6Mm7_1_4
        )
    }

    /// True when the schema's `mmDeliveryStatusType` lists
    /// `DeliveryConditionNotMet`.
    pub const fn has_delivery_condition_not_met(self) -> bool {
        matches!(self, Version::Rel6Mm7_1_3 | Version::Rel6Mm7_1_4)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A version name that is not supported; returned by [`Version::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported MM7 version `{0}` (expected REL-5-MM7-1-2 … REL-6-MM7-1-4)")]
pub struct UnknownVersion(pub String);

impl FromStr for Version {
    type Err = UnknownVersion;

    /// Parses a schema name (`REL-6-MM7-1-4`, any case) or a full namespace URI.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let name = t.strip_prefix(NAMESPACE_BASE).unwrap_or(t);
        Version::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownVersion(s.to_owned()))
    }
}
