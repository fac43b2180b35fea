//! Exact decimal numbers and their conversion to the engine's integers (ticks and lots).
//!
//! Clients write prices and sizes as decimal text (`"50000.5"`, `0.01`, `5e4`). They are parsed
//! into a [`Decimal`] without ever passing through floating point, and the engine divides them
//! by the market's tick or lot size; a value that does not divide exactly is off the grid and is
//! refused. Everything here is integer arithmetic with overflow checks.

use std::fmt;

/// Largest number of significant digits a [`Decimal`] carries: 18 always fits in an `i64`.
pub const MAX_DIGITS: u32 = 18;

/// Exponents outside this range are refused while parsing: no configured grid is that far away.
const MAX_EXPONENT: i32 = 30;

/// An exact decimal number: `mantissa × 10^exponent`.
///
/// Invariant (kept by [`Decimal::parse`] and [`Decimal::new`]): `|mantissa| < 10^18` and
/// `|exponent| <= 30`. The representation is not normalised (`10e-1` and `1e0` are both
/// possible), so compare values with [`Decimal::cmp_value`], not with `==`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub struct Decimal {
    /// Signed digits of the number.
    pub mantissa: i64,
    /// Power of ten the mantissa is scaled by.
    pub exponent: i8,
}

/// Why a text is not an exact decimal number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Empty text.
    #[error("empty number")]
    Empty,
    /// A character that cannot be part of a decimal number (this covers `NaN` and `inf`).
    #[error("not a decimal number")]
    Syntax,
    /// More significant digits than an exact 64-bit mantissa holds.
    #[error("more than {MAX_DIGITS} significant digits")]
    TooManyDigits,
    /// An exponent too large or too small to mean a price or size.
    #[error("exponent out of range")]
    ExponentRange,
}

/// Why a decimal does not convert to a whole number of grid units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    /// Zero or negative.
    #[error("not positive")]
    NotPositive,
    /// Not a whole multiple of the unit.
    #[error("not a multiple of the grid unit")]
    OffGrid,
    /// The number of units does not fit in a `u64`.
    #[error("too large")]
    TooLarge,
}

const POW10: [u128; 39] = {
    let mut table = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        exponent: 0,
    };

    /// Builds a decimal, checking the invariant.
    pub fn new(mantissa: i64, exponent: i8) -> Option<Decimal> {
        let ok = mantissa.unsigned_abs() < POW10[MAX_DIGITS as usize] as u64
            && i32::from(exponent).abs() <= MAX_EXPONENT;
        ok.then_some(Decimal { mantissa, exponent })
    }

    /// Parses decimal text exactly: an optional `-` or `+`, digits with at most one `.`, and an
    /// optional exponent (`e` or `E`, optional sign, digits). No spaces, no `NaN`, no `inf`.
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(DecimalError::Empty);
        }
        let mut i = 0;
        let negative = match bytes[0] {
            b'-' => {
                i = 1;
                true
            }
            b'+' => {
                i = 1;
                false
            }
            _ => false,
        };
        let mut mantissa: u64 = 0;
        let mut digits: u32 = 0; // significant digits kept in `mantissa`
        let mut exponent: i32 = 0;
        let mut seen_digit = false;
        let mut seen_point = false;
        let mut trailing_zeros: i32 = 0; // zeros after the last non-zero digit, not yet applied
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'0'..=b'9' => {
                    seen_digit = true;
                    let d = u64::from(b - b'0');
                    if seen_point {
                        exponent -= 1;
                    }
                    if d == 0 {
                        if mantissa != 0 {
                            trailing_zeros += 1;
                        }
                    } else {
                        // Apply the zeros that turned out not to be trailing.
                        let needed = digits + trailing_zeros as u32 + 1;
                        if needed > MAX_DIGITS {
                            return Err(DecimalError::TooManyDigits);
                        }
                        mantissa = mantissa * POW10[trailing_zeros as usize + 1] as u64 + d;
                        digits = needed;
                        trailing_zeros = 0;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                b'e' | b'E' if seen_digit => break,
                _ => return Err(DecimalError::Syntax),
            }
            i += 1;
        }
        if !seen_digit {
            return Err(DecimalError::Syntax);
        }
        // Trailing zeros stay out of the mantissa: they only move the exponent.
        exponent += trailing_zeros;
        if i < bytes.len() {
            // Exponent part: bytes[i] is 'e' or 'E'.
            let rest = &text[i + 1..];
            if rest.is_empty() || rest.len() > 4 {
                return Err(if rest.is_empty() {
                    DecimalError::Syntax
                } else {
                    DecimalError::ExponentRange
                });
            }
            let e: i32 = rest.parse().map_err(|_| DecimalError::Syntax)?;
            exponent += e;
        }
        if mantissa == 0 {
            return Ok(Decimal::ZERO);
        }
        if exponent.abs() > MAX_EXPONENT {
            return Err(DecimalError::ExponentRange);
        }
        let signed = if negative {
            -(mantissa as i64)
        } else {
            mantissa as i64
        };
        Ok(Decimal {
            mantissa: signed,
            exponent: exponent as i8,
        })
    }

    /// The exact product, if it fits the invariant (after dropping trailing zeros).
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let mut m = i128::from(self.mantissa) * i128::from(other.mantissa);
        let mut e = i32::from(self.exponent) + i32::from(other.exponent);
        if m == 0 {
            return Some(Decimal::ZERO);
        }
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        let m = i64::try_from(m).ok()?;
        Decimal::new(m, i8::try_from(e).ok()?)
    }

    /// The smallest unit of an asset with `scale` decimal places: `10^-scale`.
    pub fn unit(scale: u8) -> Decimal {
        Decimal {
            mantissa: 1,
            exponent: -(scale.min(MAX_EXPONENT as u8) as i8),
        }
    }

    /// True when the value is greater than zero.
    pub fn is_positive(self) -> bool {
        self.mantissa > 0
    }

    /// How many whole `unit`s this value is, if it is a positive exact multiple of `unit`.
    ///
    /// `unit` must be positive (config validation guarantees it for tick and lot sizes).
    pub fn to_units(self, unit: Decimal) -> Result<u64, GridError> {
        debug_assert!(unit.is_positive(), "grid unit must be positive");
        if self.mantissa <= 0 {
            return Err(GridError::NotPositive);
        }
        let shift = i32::from(self.exponent) - i32::from(unit.exponent);
        let (num, den) = if shift >= 0 {
            let scale = POW10.get(shift as usize).ok_or(GridError::TooLarge)?;
            let num = (self.mantissa as u128)
                .checked_mul(*scale)
                .ok_or(GridError::TooLarge)?;
            (num, unit.mantissa as u128)
        } else {
            // A divisor this large exceeds any mantissa, so the value cannot be a whole multiple.
            let scale = POW10.get((-shift) as usize).ok_or(GridError::OffGrid)?;
            let den = (unit.mantissa as u128)
                .checked_mul(*scale)
                .ok_or(GridError::OffGrid)?;
            (self.mantissa as u128, den)
        };
        // Almost always both fit 64 bits, where division is several times cheaper.
        if let (Ok(n), Ok(d)) = (u64::try_from(num), u64::try_from(den)) {
            if n % d != 0 {
                return Err(GridError::OffGrid);
            }
            return Ok(n / d);
        }
        if num % den != 0 {
            return Err(GridError::OffGrid);
        }
        u64::try_from(num / den).map_err(|_| GridError::TooLarge)
    }

    /// The value of `units` whole grid units, as exact decimal text (`50000.5`).
    pub fn format_units(units: u64, unit: Decimal) -> String {
        let mantissa = u128::from(units) * unit.mantissa.unsigned_abs() as u128;
        format_scaled(mantissa, i32::from(unit.exponent), unit.mantissa < 0)
    }

    /// Appends [`Decimal::format_units`]'s text to `out` without allocating.
    pub fn write_units(units: u64, unit: Decimal, out: &mut Vec<u8>) {
        let mantissa = u128::from(units) * unit.mantissa.unsigned_abs() as u128;
        write_scaled(mantissa, i32::from(unit.exponent), unit.mantissa < 0, out);
    }

    /// The value of `units` whole grid units as the nearest `f64`, for the seed-compatible REAL
    /// columns. Goes through the exact text so that the rounding is the correctly rounded one.
    pub fn units_to_f64(units: u64, unit: Decimal) -> f64 {
        // Fast path: when the integer `units × mantissa` and the power of ten are both exact in
        // an f64 (below 2^53 and at most 10^22), one IEEE multiplication or division of exact
        // values is correctly rounded, which is what parsing the text would give.
        const EXACT: u128 = 1 << 53;
        let scaled = u128::from(units) * u128::from(unit.mantissa.unsigned_abs());
        let e = i32::from(unit.exponent);
        if scaled < EXACT && e.abs() <= 22 && unit.mantissa > 0 {
            let pow = POW10[e.unsigned_abs() as usize] as f64;
            return if e >= 0 {
                scaled as f64 * pow
            } else {
                scaled as f64 / pow
            };
        }
        Decimal::format_units(units, unit)
            .parse()
            .unwrap_or(f64::NAN)
    }

    /// Compares the values of two decimals exactly.
    pub fn cmp_value(self, other: Decimal) -> std::cmp::Ordering {
        let e = self.exponent.min(other.exponent);
        // Exponents differ by at most 60; a scaled mantissa that overflows i128 is, in
        // magnitude, larger than any unscaled one (|mantissa| < 10^18), so saturation keeps
        // the order.
        let scale = |d: Decimal| -> i128 {
            let k = (i32::from(d.exponent) - i32::from(e)) as usize;
            POW10
                .get(k)
                .and_then(|p| i128::from(d.mantissa).checked_mul(*p as i128))
                .unwrap_or(if d.mantissa < 0 { i128::MIN } else { i128::MAX })
        };
        scale(self).cmp(&scale(other))
    }
}

fn format_scaled(mantissa: u128, exponent: i32, negative: bool) -> String {
    let mut out = Vec::with_capacity(24);
    write_scaled(mantissa, exponent, negative, &mut out);
    // Only ASCII digits, a sign and a point were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `mantissa × 10^exponent` (negated if `negative`) as the shortest exact decimal text
/// to `out`: no exponent, no trailing zeros after the point. No allocation but `out`'s growth.
fn write_scaled(mantissa: u128, exponent: i32, negative: bool, out: &mut Vec<u8>) {
    if negative && mantissa != 0 {
        out.push(b'-');
    }
    let mut buf = itoa::Buffer::new();
    if exponent >= 0 {
        out.extend_from_slice(buf.format(mantissa * POW10[exponent as usize]).as_bytes());
        return;
    }
    let scale = (-exponent) as usize;
    let digits = buf.format(mantissa).as_bytes();
    let (int, zeros, frac): (&[u8], usize, &[u8]) = if digits.len() > scale {
        let split = digits.len() - scale;
        (&digits[..split], 0, &digits[split..])
    } else {
        (b"0", scale - digits.len(), digits)
    };
    let significant = frac.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
    out.extend_from_slice(int);
    if significant > 0 {
        out.push(b'.');
        out.extend(std::iter::repeat_n(b'0', zeros));
        out.extend_from_slice(&frac[..significant]);
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_scaled(
            u128::from(self.mantissa.unsigned_abs()),
            i32::from(self.exponent),
            self.mantissa < 0,
        ))
    }
}

impl std::str::FromStr for Decimal {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parses_plain_and_exponent_forms_exactly() {
        assert_eq!(d("50000.5"), Decimal::new(500005, -1).unwrap());
        assert_eq!(d("0.01"), Decimal::new(1, -2).unwrap());
        assert_eq!(d("0.0100"), Decimal::new(1, -2).unwrap());
        assert_eq!(d("50000"), Decimal::new(5, 4).unwrap());
        assert_eq!(d("5e4"), Decimal::new(5, 4).unwrap());
        assert_eq!(d("1.5E-3"), Decimal::new(15, -4).unwrap());
        assert_eq!(d("-2.50"), Decimal::new(-25, -1).unwrap());
        assert_eq!(d("+7"), Decimal::new(7, 0).unwrap());
        assert_eq!(d("0"), Decimal::ZERO);
        assert_eq!(d("-0.000"), Decimal::ZERO);
        assert_eq!(d(".5"), Decimal::new(5, -1).unwrap());
        assert_eq!(d("5."), Decimal::new(5, 0).unwrap());
        assert_eq!(d("100200"), Decimal::new(1002, 2).unwrap());
    }

    #[test]
    fn refuses_what_is_not_an_exact_decimal() {
        for (text, err) in [
            ("", DecimalError::Empty),
            ("NaN", DecimalError::Syntax),
            ("nan", DecimalError::Syntax),
            ("inf", DecimalError::Syntax),
            ("-", DecimalError::Syntax),
            (".", DecimalError::Syntax),
            ("1.2.3", DecimalError::Syntax),
            ("1e", DecimalError::Syntax),
            ("e5", DecimalError::Syntax),
            (" 1", DecimalError::Syntax),
            ("1 ", DecimalError::Syntax),
            ("0x10", DecimalError::Syntax),
            ("1234567890123456789", DecimalError::TooManyDigits),
            ("1e99", DecimalError::ExponentRange),
            ("1e99999", DecimalError::ExponentRange),
        ] {
            assert_eq!(Decimal::parse(text), Err(err), "{text:?}");
        }
        // Many digits are fine when the extra ones are zeros.
        assert_eq!(d("1000000000000000000000"), Decimal::new(1, 21).unwrap());
        assert_eq!(d("0.000000000000000000001"), Decimal::new(1, -21).unwrap());
    }

    #[test]
    fn converts_to_units_only_on_the_grid() {
        let tick = d("0.5");
        assert_eq!(d("50000.5").to_units(tick), Ok(100001));
        assert_eq!(d("50000.25").to_units(tick), Err(GridError::OffGrid));
        assert_eq!(d("0").to_units(tick), Err(GridError::NotPositive));
        assert_eq!(d("-1").to_units(tick), Err(GridError::NotPositive));
        let lot = d("0.0001");
        assert_eq!(d("0.01").to_units(lot), Ok(100));
        assert_eq!(d("0.00001").to_units(lot), Err(GridError::OffGrid));
        assert_eq!(d("1e20").to_units(lot), Err(GridError::TooLarge));
        assert_eq!(d("25").to_units(d("5e1")), Err(GridError::OffGrid));
        assert_eq!(d("100").to_units(d("5e1")), Ok(2));
        assert_eq!(d("1e30").to_units(d("1e-30")), Err(GridError::TooLarge));
        assert_eq!(d("1e-30").to_units(d("1e30")), Err(GridError::OffGrid));
    }

    #[test]
    fn formats_units_back_to_the_same_text() {
        assert_eq!(Decimal::format_units(100001, d("0.5")), "50000.5");
        assert_eq!(Decimal::format_units(100, d("0.0001")), "0.01");
        assert_eq!(Decimal::format_units(2, d("5e1")), "100");
        assert_eq!(Decimal::units_to_f64(100, d("0.0001")), 0.01);
        // The fast path agrees with parsing the exact text, across grids and magnitudes.
        for unit in ["0.1", "0.01", "0.0001", "0.00000001", "5", "2.5e3", "0.3"] {
            let unit = d(unit);
            for units in [
                1u64,
                3,
                7,
                10,
                123,
                999_999,
                100_001,
                12_345_678_901,
                1 << 52,
            ] {
                let text: f64 = Decimal::format_units(units, unit).parse().unwrap();
                assert_eq!(Decimal::units_to_f64(units, unit), text, "{units} x {unit}");
            }
        }
        assert_eq!(d("-0.05").to_string(), "-0.05");
        assert_eq!(d("1200").to_string(), "1200");
    }

    #[test]
    fn multiplies_exactly() {
        assert_eq!(d("0.1").checked_mul(d("0.0001")), Some(d("0.00001")));
        assert_eq!(d("2.5").checked_mul(d("4")), Some(d("10")));
        assert_eq!(d("-3").checked_mul(d("0.5")), Some(d("-1.5")));
        assert_eq!(d("0").checked_mul(d("7")), Some(Decimal::ZERO));
        assert_eq!(d("123456789012345678").checked_mul(d("99")), None);
        assert_eq!(Decimal::unit(8), d("0.00000001"));
    }

    #[test]
    fn compares_values_across_exponents() {
        use std::cmp::Ordering::*;
        assert_eq!(d("10e-1").cmp_value(d("1")), Equal);
        assert_eq!(d("0.5").cmp_value(d("1")), Less);
        assert_eq!(d("-3").cmp_value(d("-4")), Greater);
        assert_eq!(d("1e30").cmp_value(d("1e-30")), Greater);
        assert_eq!(d("-1e30").cmp_value(d("1e-30")), Less);
    }
}
