//! The two North American coupon structures of the GS1 Barcode Syntax
//! Dictionary, as linters: `couponcode`, the North American Coupon Code
//! carried in AI (8110), and `couponposoffer`, the positive offer file
//! coupon carried in AI (8112). Pure.
//!
//! Both are strings of digits made of fields, some of them led by a
//! variable-length indicator (VLI): one digit giving the field's length.
//!
//! AI (8110), in order (GS1 US "North American Coupon Application
//! Guideline Using GS1 DataBar Expanded Symbols"):
//!
//! - primary GS1 Company Prefix: VLI 0–6, then 6 + VLI digits, held to the
//!   `gcppos1` rule;
//! - offer code: 6 digits;
//! - save value: VLI 1–5, then that many digits;
//! - 1st purchase requirement: VLI 1–5, then that many digits; its code
//!   (0–4 or 9); its family code (3 digits);
//! - then optional fields, each led by its number, in this order and each
//!   at most once:
//!   - 1, additional rules and 2nd purchase: additional purchase rules code
//!     (0–3); the 2nd purchase requirement (VLI 1–5, digits, code 0–4 or 9,
//!     3-digit family code); the 2nd purchase GCP: VLI 0–6 then 6 + VLI
//!     digits (`gcppos1`), or VLI 9 for none;
//!   - 2, 3rd purchase: as the 2nd, without the rules code;
//!   - 3, expiration date: YYMMDD;
//!   - 4, start date: YYMMDD, not after the expiration date when both are
//!     given (compared as written, YYMMDD, as GS1's reference does);
//!   - 5, serial number: VLI 0–9, then 6 + VLI digits;
//!   - 6, retailer GCP or GLN: VLI 1–7, then 6 + VLI digits (`gcppos1`);
//!   - 9, miscellaneous: save value code (0, 1, 2, 5 or 6), save value
//!     applies to item (0–2), store coupon flag (a digit), don't multiply
//!     flag (0 or 1);
//! - nothing after the last field.
//!
//! AI (8112) (GS1 US "AI (8112) Coupon Data Specification"): format code
//! (0 or 1); funder ID: VLI 0–6, then 6 + VLI digits; offer code: 6
//! digits; serial number: VLI 0–9, then 6 + VLI digits; nothing after.
//!
//! The rules are those of GS1's reference linters, `lint_couponcode.c` and
//! `lint_couponposoffer.c` of the GS1 Syntax Engine
//! (github.com/gs1/gs1-syntax-engine, Apache 2.0), whose unit-test vectors
//! the tests here reuse. Each failure is a [`LintFailure::Invalid`] naming
//! the field at fault, e.g. `coupon: save value VLI must be 1 to 5`.

use std::fmt::Display;
use std::ops::RangeInclusive;

use super::interpret::YyMmDd;
use super::lint::{LintFailure, Linter};

/// Length of the offer code, in both structures.
const OFFER_CODE_LEN: usize = 6;
/// Length of a YYMMDD date.
const DATE_LEN: usize = 6;
/// What a VLI of 0 means for company prefixes, GLNs, funder IDs and serial
/// numbers: the field's length is 6 + VLI.
const VLI_BASE: usize = 6;
/// A VLI of 9 for the 2nd or 3rd purchase GCP: none given (the primary
/// GCP applies).
const NO_GCP: u8 = 9;

/// Checks AI (8110) data: the North American Coupon Code.
pub(super) fn coupon_code(data: &str) -> Result<(), LintFailure> {
    let mut c = Cursor::new(data)?;
    c.company_prefix("primary GCP", 0..=6)?;
    c.take("offer code", OFFER_CODE_LEN)?;
    let len = c.vli("save value", 1..=5)?;
    c.take("save value", len)?;
    c.purchase("1st purchase")?;

    if c.option(1) {
        c.code("additional purchase rules code", b"0123", "0 to 3")?;
        c.purchase("2nd purchase")?;
        c.purchase_company_prefix("2nd purchase GCP")?;
    }
    if c.option(2) {
        c.purchase("3rd purchase")?;
        c.purchase_company_prefix("3rd purchase GCP")?;
    }
    let expiration = if c.option(3) {
        Some(c.date("expiration date")?)
    } else {
        None
    };
    if c.option(4) {
        let start = c.date("start date")?;
        // As written, YYMMDD: the reference compares the text.
        if let Some(expiration) = expiration.filter(|&e| e < start) {
            return Err(fail(format_args!(
                "expiration date {expiration} is before start date {start}"
            )));
        }
    }
    if c.option(5) {
        c.serial_number()?;
    }
    if c.option(6) {
        c.company_prefix("retailer GCP/GLN", 1..=7)?;
    }
    if c.option(9) {
        c.code("save value code", b"01256", "0, 1, 2, 5 or 6")?;
        c.code("save value applies to item", b"012", "0, 1 or 2")?;
        c.code("store coupon flag", b"0123456789", "a digit")?;
        c.code("don't multiply flag", b"01", "0 or 1")?;
    }
    c.end("optional fields are 1 to 6 and 9, in that order, each once")
}

/// Checks AI (8112) data: the positive offer file coupon.
pub(super) fn positive_offer(data: &str) -> Result<(), LintFailure> {
    let mut c = Cursor::new(data)?;
    c.code("format code", b"01", "0 or 1")?;
    let len = c.vli("funder ID", 0..=6)?;
    c.take("funder ID", VLI_BASE + len)?;
    c.take("offer code", OFFER_CODE_LEN)?;
    c.serial_number()?;
    c.end("the serial number is the last field")
}

fn fail(what: impl Display) -> LintFailure {
    LintFailure::Invalid(format!("coupon: {what}"))
}

/// Reads a coupon's fields front to back.
struct Cursor<'a> {
    /// Digits only (checked by [`Cursor::new`]).
    data: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a str) -> Result<Self, LintFailure> {
        if let Some((i, ch)) = data.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(fail(format_args!(
                "{ch:?} at character {} is not a digit",
                i + 1
            )));
        }
        Ok(Cursor { data, at: 0 })
    }

    fn left(&self) -> usize {
        self.data.len() - self.at
    }

    /// The next digit's value, if any.
    fn peek(&self) -> Option<u8> {
        self.data.as_bytes().get(self.at).map(|b| b - b'0')
    }

    /// Takes the optional field `number` if it comes next.
    fn option(&mut self, number: u8) -> bool {
        let next = self.peek() == Some(number);
        if next {
            self.at += 1;
        }
        next
    }

    /// Takes `len` digits for `field`.
    fn take(&mut self, field: &str, len: usize) -> Result<&'a str, LintFailure> {
        let left = self.left();
        if left < len {
            return Err(fail(format_args!(
                "{field} truncated: {len} digits needed, {left} left"
            )));
        }
        let digits = &self.data[self.at..self.at + len];
        self.at += len;
        Ok(digits)
    }

    /// Takes the one-digit `field`, which must be one of `allowed`
    /// (`says` in words).
    fn code(&mut self, field: &str, allowed: &[u8], says: &str) -> Result<u8, LintFailure> {
        let Some(digit) = self.peek() else {
            return Err(fail(format_args!("{field} missing")));
        };
        if !allowed.contains(&(b'0' + digit)) {
            return Err(fail(format_args!("{field} must be {says}, not {digit}")));
        }
        self.at += 1;
        Ok(digit)
    }

    /// Takes the VLI of `field`, which must be in `range`; its value.
    fn vli(&mut self, field: &str, range: RangeInclusive<u8>) -> Result<usize, LintFailure> {
        let Some(digit) = self.peek() else {
            return Err(fail(format_args!("{field} VLI missing")));
        };
        if !range.contains(&digit) {
            return Err(fail(format_args!(
                "{field} VLI must be {} to {}, not {digit}",
                range.start(),
                range.end()
            )));
        }
        self.at += 1;
        Ok(usize::from(digit))
    }

    /// A VLI in `range`, then 6 + VLI digits starting with a GS1 Company
    /// Prefix.
    fn company_prefix(
        &mut self,
        field: &str,
        range: RangeInclusive<u8>,
    ) -> Result<(), LintFailure> {
        let len = VLI_BASE + self.vli(field, range)?;
        self.gcp_digits(field, len)
    }

    /// The 6 + VLI digits of a GCP or GLN, held to the `gcppos1` rule.
    /// With digits only, at least 6 of them, the rule cannot fail today;
    /// it is applied so that a stricter `gcppos1` (a prefix look-up)
    /// reaches coupons too, as in GS1's reference.
    fn gcp_digits(&mut self, field: &str, len: usize) -> Result<(), LintFailure> {
        let gcp = self.take(field, len)?;
        Linter::GcpPos1.check(gcp).map_err(|failure| match failure {
            LintFailure::Invalid(why) => fail(format_args!("{field} {why}")),
            other => other,
        })
    }

    /// The 2nd or 3rd purchase GCP: VLI 0–6 then 6 + VLI digits, or VLI 9
    /// for none.
    fn purchase_company_prefix(&mut self, field: &str) -> Result<(), LintFailure> {
        match self.peek() {
            None => Err(fail(format_args!("{field} VLI missing"))),
            Some(NO_GCP) => {
                self.at += 1;
                Ok(())
            }
            Some(vli @ 0..=6) => {
                self.at += 1;
                self.gcp_digits(field, VLI_BASE + usize::from(vli))
            }
            Some(vli) => Err(fail(format_args!(
                "{field} VLI must be 0 to 6, or 9 for none, not {vli}"
            ))),
        }
    }

    /// A purchase requirement: VLI 1–5 and its digits, its code, its
    /// family code.
    fn purchase(&mut self, which: &str) -> Result<(), LintFailure> {
        let field = format!("{which} requirement");
        let len = self.vli(&field, 1..=5)?;
        self.take(&field, len)?;
        self.code(
            &format!("{which} requirement code"),
            b"012349",
            "0 to 4 or 9",
        )?;
        self.take(&format!("{which} family code"), 3)?;
        Ok(())
    }

    /// A YYMMDD date (day 00 not allowed), as written.
    fn date(&mut self, field: &str) -> Result<&'a str, LintFailure> {
        let date = self.take(field, DATE_LEN)?;
        match YyMmDd::parse(date, false) {
            Some(_) => Ok(date),
            None => Err(fail(format_args!("{field} {date} is not a valid YYMMDD"))),
        }
    }

    /// A serial number: VLI 0–9, then 6 + VLI digits.
    fn serial_number(&mut self) -> Result<(), LintFailure> {
        let len = VLI_BASE + self.vli("serial number", 0..=9)?;
        self.take("serial number", len)?;
        Ok(())
    }

    /// Nothing may follow the last field (`why` says which that is).
    fn end(self, why: &str) -> Result<(), LintFailure> {
        match &self.data[self.at..] {
            "" => Ok(()),
            rest => Err(fail(format_args!(
                "unexpected {rest:?} after the last field at character {} ({why})",
                self.at + 1
            ))),
        }
    }
}
