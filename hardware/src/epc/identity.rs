//! Pure identities (TDS §6): the EPC without filter and without binary
//! coding, as written in a pure-identity URI (`urn:epc:id:…`); their GS1
//! keys and element strings (TDS §7); and the choice of a binary coding
//! for one (TDS §12.3.2: a pure identity plus a filter and a coding scheme
//! gives a tag).
//!
//! Serials, extensions and asset references are held as [`Cset82`]
//! strings here whatever coding they came from: an SGTIN-96 serial 6789
//! and an SGTIN-198 serial "6789" are the same EPC (TDS §12.3.1), and
//! their pure identities compare equal.

use tally_sync::Gtin;

use super::giai::{giai202_chars, giai96_bits};
use super::grai::{grai_key, GRAI96_SERIAL_LIMIT};
use super::partition::pad;
use super::sgln::{gln_of, SGLN96_EXTENSION_LIMIT};
use super::sgtin::{gtin_of, SGTIN96_SERIAL_LIMIT};
use super::sscc::sscc_of;
use super::text::Cset82;
use super::{
    DecodedEpc, EpcError, Giai202, Giai96, Grai96, Sgln195, Sgln96, Sgtin198, Sgtin96, Sscc96,
};

/// An EPC pure identity of a GS1 scheme. Numeric fields are held with the
/// partition that fixes their digit counts (company prefix 12 − partition
/// digits; the second field per the scheme's partition table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PureIdentity {
    /// `urn:epc:id:sgtin:CompanyPrefix.ItemRefAndIndicator.Serial`.
    Sgtin {
        /// Partition 0..=6.
        partition: u8,
        /// GS1 company prefix.
        company_prefix: u64,
        /// Indicator digit and item reference (partition + 1 digits).
        item_reference: u64,
        /// Serial (AI 21).
        serial: Cset82,
    },
    /// `urn:epc:id:sscc:CompanyPrefix.SerialReference`.
    Sscc {
        /// Partition 0..=6.
        partition: u8,
        /// GS1 company prefix.
        company_prefix: u64,
        /// Extension digit and serial reference (partition + 5 digits).
        serial_reference: u64,
    },
    /// `urn:epc:id:sgln:CompanyPrefix.LocationReference.Extension`.
    Sgln {
        /// Partition 0..=6.
        partition: u8,
        /// GS1 company prefix.
        company_prefix: u64,
        /// Location reference (partition digits).
        location_reference: u64,
        /// Extension (AI 254); "0" = the GLN without extension.
        extension: Cset82,
    },
    /// `urn:epc:id:grai:CompanyPrefix.AssetType.Serial`.
    Grai {
        /// Partition 0..=6.
        partition: u8,
        /// GS1 company prefix.
        company_prefix: u64,
        /// Asset type (partition digits).
        asset_type: u64,
        /// Serial (the serial part of AI 8003).
        serial: Cset82,
    },
    /// `urn:epc:id:giai:CompanyPrefix.IndividualAssetReference`.
    Giai {
        /// Partition 0..=6.
        partition: u8,
        /// GS1 company prefix.
        company_prefix: u64,
        /// Individual asset reference.
        asset_reference: Cset82,
    },
}

/// Which binary coding scheme a pure identity is written with (TDS §12.3.1
/// Table 12-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coding {
    /// The 96-bit scheme when the serial (extension, asset reference) is
    /// digits without leading zeros within its bits, else the long scheme.
    #[default]
    Shortest,
    /// The 96-bit scheme, or an error.
    Bits96,
    /// SGTIN-198, SGLN-195 or GIAI-202 (SSCC and GRAI: an error, no long
    /// scheme is supported for them).
    Long,
}

fn cp(partition: u8, company_prefix: u64) -> String {
    pad(company_prefix, 12 - u32::from(partition.min(6)))
}

impl PureIdentity {
    /// The EPC scheme: `sgtin`, `sscc`, `sgln`, `grai` or `giai`.
    pub fn scheme(&self) -> &'static str {
        match self {
            PureIdentity::Sgtin { .. } => "sgtin",
            PureIdentity::Sscc { .. } => "sscc",
            PureIdentity::Sgln { .. } => "sgln",
            PureIdentity::Grai { .. } => "grai",
            PureIdentity::Giai { .. } => "giai",
        }
    }

    /// The partition.
    pub fn partition(&self) -> u8 {
        match self {
            PureIdentity::Sgtin { partition, .. }
            | PureIdentity::Sscc { partition, .. }
            | PureIdentity::Sgln { partition, .. }
            | PureIdentity::Grai { partition, .. }
            | PureIdentity::Giai { partition, .. } => *partition,
        }
    }

    /// The URI components by name, in URI order, zero-padded digits and
    /// text in GS1 form (unescaped): `company_prefix`, then
    /// `item_reference` + `serial`, `serial_reference`,
    /// `location_reference` + `extension`, `asset_type` + `serial` or
    /// `asset_reference`.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let p = |x: &u8| u32::from((*x).min(6));
        match self {
            PureIdentity::Sgtin {
                partition,
                company_prefix,
                item_reference,
                serial,
            } => vec![
                ("company_prefix", cp(*partition, *company_prefix)),
                ("item_reference", pad(*item_reference, p(partition) + 1)),
                ("serial", serial.to_string()),
            ],
            PureIdentity::Sscc {
                partition,
                company_prefix,
                serial_reference,
            } => vec![
                ("company_prefix", cp(*partition, *company_prefix)),
                ("serial_reference", pad(*serial_reference, p(partition) + 5)),
            ],
            PureIdentity::Sgln {
                partition,
                company_prefix,
                location_reference,
                extension,
            } => vec![
                ("company_prefix", cp(*partition, *company_prefix)),
                ("location_reference", pad(*location_reference, p(partition))),
                ("extension", extension.to_string()),
            ],
            PureIdentity::Grai {
                partition,
                company_prefix,
                asset_type,
                serial,
            } => vec![
                ("company_prefix", cp(*partition, *company_prefix)),
                ("asset_type", pad(*asset_type, p(partition))),
                ("serial", serial.to_string()),
            ],
            PureIdentity::Giai {
                partition,
                company_prefix,
                asset_reference,
            } => vec![
                ("company_prefix", cp(*partition, *company_prefix)),
                ("asset_reference", asset_reference.to_string()),
            ],
        }
    }

    /// The pure-identity URI (TDS §6.3), text fields in URI form.
    pub fn uri(&self) -> String {
        let mut parts: Vec<String> = self.fields().into_iter().map(|(_, v)| v).collect();
        if let (Some(last), Some(text)) = (parts.last_mut(), self.text()) {
            *last = text.to_uri();
        }
        format!("urn:epc:id:{}:{}", self.scheme(), parts.join("."))
    }

    /// The alphanumeric field, last in the URI (none for an SSCC).
    fn text(&self) -> Option<&Cset82> {
        match self {
            PureIdentity::Sgtin { serial, .. } | PureIdentity::Grai { serial, .. } => Some(serial),
            PureIdentity::Sgln { extension, .. } => Some(extension),
            PureIdentity::Giai {
                asset_reference, ..
            } => Some(asset_reference),
            PureIdentity::Sscc { .. } => None,
        }
    }

    /// The GTIN of an SGTIN.
    pub fn gtin(&self) -> Option<Gtin> {
        match self {
            PureIdentity::Sgtin {
                partition,
                company_prefix,
                item_reference,
                ..
            } => gtin_of(*partition, *company_prefix, *item_reference),
            _ => None,
        }
    }

    /// The GS1 key with its name: `gtin` (GTIN-14), `sscc` (18 digits),
    /// `gln` (13 digits), `grai` (AI 8003 data, serial included) or `giai`
    /// (AI 8004 data).
    pub fn key(&self) -> Option<(&'static str, String)> {
        Some(match self {
            PureIdentity::Sgtin { .. } => ("gtin", self.gtin()?.to_string()),
            PureIdentity::Sscc {
                partition,
                company_prefix,
                serial_reference,
            } => (
                "sscc",
                sscc_of(*partition, *company_prefix, *serial_reference),
            ),
            PureIdentity::Sgln {
                partition,
                company_prefix,
                location_reference,
                ..
            } => (
                "gln",
                gln_of(*partition, *company_prefix, *location_reference),
            ),
            PureIdentity::Grai {
                partition,
                company_prefix,
                asset_type,
                serial,
            } => (
                "grai",
                format!(
                    "{}{serial}",
                    grai_key(*partition, *company_prefix, *asset_type)
                ),
            ),
            PureIdentity::Giai {
                partition,
                company_prefix,
                asset_reference,
            } => (
                "giai",
                format!("{}{asset_reference}", cp(*partition, *company_prefix)),
            ),
        })
    }

    /// The GS1 element string in human-readable form (TDS §7): `(01)…(21)…`,
    /// `(00)…`, `(414)…` with `(254)…` unless the extension is "0",
    /// `(8003)…`, `(8004)…`.
    pub fn element_string(&self) -> Option<String> {
        let (_, key) = self.key()?;
        Some(match self {
            PureIdentity::Sgtin { serial, .. } => format!("(01){key}(21){serial}"),
            PureIdentity::Sscc { .. } => format!("(00){key}"),
            PureIdentity::Sgln { extension, .. } if extension.as_str() == "0" => {
                format!("(414){key}")
            }
            PureIdentity::Sgln { extension, .. } => format!("(414){key}(254){extension}"),
            PureIdentity::Grai { .. } => format!("(8003){key}"),
            PureIdentity::Giai { .. } => format!("(8004){key}"),
        })
    }

    /// The tag for this identity with `filter` in the chosen coding (TDS
    /// §12.3.2); fails when the coding cannot hold the identity (e.g. a
    /// serial with leading zeros in SGTIN-96) or a field is out of range.
    pub fn to_tag(&self, filter: u8, coding: Coding) -> Result<DecodedEpc, EpcError> {
        let short = |text: &Cset82, limit: u64| text.as_number().filter(|&n| n < limit);
        match self {
            PureIdentity::Sgtin {
                partition,
                company_prefix,
                item_reference,
                serial,
            } => match (coding, short(serial, SGTIN96_SERIAL_LIMIT)) {
                (Coding::Shortest | Coding::Bits96, Some(n)) => {
                    Sgtin96::new(filter, *partition, *company_prefix, *item_reference, n)
                        .map(DecodedEpc::Sgtin96)
                }
                (Coding::Bits96, None) => Err(EpcError::Encode(
                    "sgtin-96 needs a serial of digits without leading zeros, below 2^38",
                )),
                _ => Sgtin198::new(
                    filter,
                    *partition,
                    *company_prefix,
                    *item_reference,
                    serial.clone(),
                )
                .map(DecodedEpc::Sgtin198),
            },
            PureIdentity::Sscc {
                partition,
                company_prefix,
                serial_reference,
            } => match coding {
                Coding::Long => Err(EpcError::Encode("sscc has no long coding: use sscc-96")),
                _ => Sscc96::new(filter, *partition, *company_prefix, *serial_reference)
                    .map(DecodedEpc::Sscc96),
            },
            PureIdentity::Sgln {
                partition,
                company_prefix,
                location_reference,
                extension,
            } => match (coding, short(extension, SGLN96_EXTENSION_LIMIT)) {
                (Coding::Shortest | Coding::Bits96, Some(n)) => {
                    Sgln96::new(filter, *partition, *company_prefix, *location_reference, n)
                        .map(DecodedEpc::Sgln96)
                }
                (Coding::Bits96, None) => Err(EpcError::Encode(
                    "sgln-96 needs an extension of digits without leading zeros, below 2^41",
                )),
                _ => Sgln195::new(
                    filter,
                    *partition,
                    *company_prefix,
                    *location_reference,
                    extension.clone(),
                )
                .map(DecodedEpc::Sgln195),
            },
            PureIdentity::Grai {
                partition,
                company_prefix,
                asset_type,
                serial,
            } => match (coding, short(serial, GRAI96_SERIAL_LIMIT)) {
                (Coding::Shortest | Coding::Bits96, Some(n)) => {
                    Grai96::new(filter, *partition, *company_prefix, *asset_type, n)
                        .map(DecodedEpc::Grai96)
                }
                _ => Err(EpcError::Encode(
                    "grai-96 needs a serial of digits without leading zeros, below 2^38 \
                     (grai-170 is not supported)",
                )),
            },
            PureIdentity::Giai {
                partition,
                company_prefix,
                asset_reference,
            } => {
                let bits = giai96_bits(*partition);
                let limit = 1u64.checked_shl(bits).unwrap_or(u64::MAX);
                match (coding, short(asset_reference, limit)) {
                    (Coding::Shortest | Coding::Bits96, Some(n)) => {
                        Giai96::new(filter, *partition, *company_prefix, n).map(DecodedEpc::Giai96)
                    }
                    (Coding::Bits96, None) => Err(EpcError::Encode(
                        "giai-96 needs an asset reference of digits without leading zeros \
                         within the partition's bits",
                    )),
                    _ => Giai202::new(filter, *partition, *company_prefix, asset_reference.clone())
                        .map(DecodedEpc::Giai202),
                }
            }
        }
    }

    /// Checks the GS1 length limits of the text field (GS1 General
    /// Specifications: AI 21 and AI 254 X..20, AI 8003 serial X..16, AI
    /// 8004 X..30 with the company prefix).
    pub(crate) fn check_lengths(&self) -> Result<(), EpcError> {
        let ok = match self {
            PureIdentity::Sgtin { serial, .. } => serial.len() <= 20,
            PureIdentity::Sscc { .. } => true,
            PureIdentity::Sgln { extension, .. } => extension.len() <= 20,
            PureIdentity::Grai { serial, .. } => serial.len() <= 16,
            // 30 characters with the company prefix: 18 + partition, the
            // same as GIAI-202's maximum (Table 14-15).
            PureIdentity::Giai {
                partition,
                asset_reference,
                ..
            } => asset_reference.len() <= giai202_chars(*partition),
        };
        if ok {
            Ok(())
        } else {
            Err(EpcError::Uri(
                "the serial, extension or asset reference is too long",
            ))
        }
    }
}

impl Sgtin96 {
    /// The pure identity (TDS §6.3.1).
    pub fn identity(&self) -> PureIdentity {
        PureIdentity::Sgtin {
            partition: self.partition,
            company_prefix: self.company_prefix,
            item_reference: self.item_reference,
            serial: Cset82::from_number(self.serial),
        }
    }
}

impl Sgtin198 {
    /// The pure identity (TDS §6.3.1).
    pub fn identity(&self) -> PureIdentity {
        PureIdentity::Sgtin {
            partition: self.partition,
            company_prefix: self.company_prefix,
            item_reference: self.item_reference,
            serial: self.serial.clone(),
        }
    }
}

impl Sscc96 {
    /// The pure identity (TDS §6.3.2).
    pub fn identity(&self) -> PureIdentity {
        PureIdentity::Sscc {
            partition: self.partition,
            company_prefix: self.company_prefix,
            serial_reference: self.serial_reference,
        }
    }
}

impl Sgln96 {
    /// The pure identity (TDS §6.3.3).
    pub fn identity(&self) -> PureIdentity {
        PureIdentity::Sgln {
            partition: self.partition,
            company_prefix: self.company_prefix,
            location_reference: self.location_reference,
            extension: Cset82::from_number(self.extension),
        }
    }
}

impl Sgln195 {
    /// The pure identity (TDS §6.3.3).
    pub fn identity(&self) -> PureIdentity {
        PureIdentity::Sgln {
            partition: self.partition,
            company_prefix: self.company_prefix,
            location_reference: self.location_reference,
            extension: self.extension.clone(),
        }
    }
}

impl Grai96 {
    /// The pure identity (TDS §6.3.4).
    pub fn identity(&self) -> PureIdentity {
        PureIdentity::Grai {
            partition: self.partition,
            company_prefix: self.company_prefix,
            asset_type: self.asset_type,
            serial: Cset82::from_number(self.serial),
        }
    }
}

impl Giai96 {
    /// The pure identity (TDS §6.3.5).
    pub fn identity(&self) -> PureIdentity {
        PureIdentity::Giai {
            partition: self.partition,
            company_prefix: self.company_prefix,
            asset_reference: Cset82::from_number(self.asset_reference),
        }
    }
}

impl Giai202 {
    /// The pure identity (TDS §6.3.5).
    pub fn identity(&self) -> PureIdentity {
        PureIdentity::Giai {
            partition: self.partition,
            company_prefix: self.company_prefix,
            asset_reference: self.asset_reference.clone(),
        }
    }
}

impl DecodedEpc {
    /// The pure identity of a GS1 scheme (`None` for raw EPCs).
    pub fn identity(&self) -> Option<PureIdentity> {
        Some(match self {
            DecodedEpc::Sgtin96(s) => s.identity(),
            DecodedEpc::Sgtin198(s) => s.identity(),
            DecodedEpc::Sscc96(s) => s.identity(),
            DecodedEpc::Sgln96(s) => s.identity(),
            DecodedEpc::Sgln195(s) => s.identity(),
            DecodedEpc::Grai96(g) => g.identity(),
            DecodedEpc::Giai96(g) => g.identity(),
            DecodedEpc::Giai202(g) => g.identity(),
            DecodedEpc::Raw(_) => return None,
        })
    }
}
