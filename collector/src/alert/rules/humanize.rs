//! Numbers as alert templates print them: Go's `%g` family and Prometheus's `humanize*`
//! template functions, so a message written for Prometheus reads the same here.
//!
//! Owns the formatting only; which function a template calls is [`super::template`]'s.
//! The algorithms follow Go's `strconv.FormatFloat` (`'g'`, `'f'`) and Prometheus's
//! `template/template.go`; digits come from Rust's own exact float formatting, so the
//! rounding is correct to the last digit (ties to even, as Go's).

/// Go's `%v` of a float64 (`strconv.FormatFloat(v, 'g', -1, 64)`): the shortest digits
/// that read back to `v`, in exponent form when the exponent is below -4 or at least 6
/// (`1e+06`, as Prometheus prints `{{ $value }}`).
/// `NaN`, `+Inf`, `-Inf` as Go spells them.
pub fn go_value(v: f64) -> String {
    format_g(v, None)
}

/// Go's `%.{precision}g` (`None`: shortest, as `%v`): `precision` significant digits,
/// trailing zeros dropped, exponent form when the exponent is below -4 or at least the
/// precision.
pub fn format_g(v: f64, precision: Option<usize>) -> String {
    if let Some(special) = special(v) {
        return special.to_owned();
    }
    let digits = Digits::of(v, precision.map(|p| p.max(1)));
    // Go (strconv/ftoa.go, formatDigits): eprec is the precision, or the digit count
    // when shorter and the digits are all in the integer part; 6 for the shortest form.
    let eprec = match precision {
        None => 6,
        Some(p) => {
            let p = p.max(1);
            if p > digits.nd() && digits.nd() as i32 >= digits.dp {
                digits.nd()
            } else {
                p
            }
        }
    };
    let exp = digits.dp - 1;
    if exp < -4 || exp >= eprec as i32 {
        digits.exponent_form()
    } else {
        let decimals = (digits.nd() as i32 - digits.dp).max(0);
        digits.fixed_form(decimals as usize)
    }
}

/// Go's `%.{decimals}f`.
pub fn format_f(v: f64, decimals: usize) -> String {
    match special(v) {
        Some(special) => special.to_owned(),
        None => format!("{v:.decimals$}"),
    }
}

/// Prometheus's `humanize`: SI prefixes (k, M, G, ... or m, u, n, ...) and 4 significant
/// digits: `1234567` → `1.235M`, `0.00123` → `1.23m`.
pub fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus's `humanize1024`: binary prefixes (ki, Mi, Gi, ...), 4 significant digits:
/// `1048576` → `1Mi`.
pub fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus's `humanizeDuration` of seconds: `90061` → `1d 1h 1m 1s`, `75` → `1m 15s`,
/// `1.5` → `1.5s`, `0.0025` → `2.5ms`.
pub fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        // Go's int64(v): truncation, saturating here instead of wrapping.
        let whole = v as i64;
        let (seconds, minutes) = (whole % 60, (whole / 60) % 60);
        let (hours, days) = ((whole / 3600) % 24, whole / 86_400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", format_g(v, Some(4)))
        };
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, Some(4)))
}

/// Prometheus's `humanizePercentage` of a ratio: `0.1234` → `12.34%`.
pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", format_g(v * 100.0, Some(4)))
}

/// Prometheus's `humanizeTimestamp` of Unix seconds, as Go prints a UTC time:
/// `1700000000` → `2023-11-14 22:13:20 +0000 UTC`. Out of range: the number as `%.4g`.
pub fn humanize_timestamp(v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    let seconds = v.floor();
    let nanos = ((v - seconds) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    // Beyond i64 the cast saturates and chrono refuses the time below.
    match chrono::DateTime::from_timestamp(seconds as i64, nanos) {
        Some(time) => {
            let mut text = time.format("%Y-%m-%d %H:%M:%S").to_string();
            if nanos != 0 {
                let fraction = format!("{nanos:09}");
                text.push('.');
                text.push_str(fraction.trim_end_matches('0'));
            }
            text.push_str(" +0000 UTC");
            text
        }
        None => format_g(v, Some(4)),
    }
}

/// Go's spelling of the values that have no digits.
fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// A finite number as decimal digits: `0.d1d2... × 10^dp`, trailing zeros dropped
/// (Go's `decimalSlice`).
struct Digits {
    negative: bool,
    digits: Vec<u8>,
    /// Where the decimal point is, counted from the first digit.
    dp: i32,
}

impl Digits {
    /// The digits of `v`, rounded to `significant` digits or shortest when `None`.
    fn of(v: f64, significant: Option<usize>) -> Self {
        let text = match significant {
            Some(n) => format!("{:.*e}", n - 1, v.abs()),
            None => format!("{:e}", v.abs()),
        };
        // Rust writes `d.ddde[-]x`; zero is `0e0`.
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while digits.len() > 1 && digits.last() == Some(&b'0') {
            digits.pop();
        }
        let zero = digits == [b'0'];
        Self {
            negative: v.is_sign_negative() && !zero,
            dp: if zero { 1 } else { exponent + 1 },
            digits,
        }
    }

    fn nd(&self) -> usize {
        self.digits.len()
    }

    fn sign(&self) -> &'static str {
        if self.negative { "-" } else { "" }
    }

    /// `d.ddde±xx`, at least two exponent digits (Go's `fmtE`).
    fn exponent_form(&self) -> String {
        let mut out = String::from(self.sign());
        out.push(char::from(self.digits[0]));
        if self.nd() > 1 {
            out.push('.');
            out.extend(self.digits[1..].iter().map(|&d| char::from(d)));
        }
        let exp = self.dp - 1;
        let sign = if exp < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exp.abs()));
        out
    }

    /// `ddd.ddd` with `decimals` digits after the point (Go's `fmtF`).
    fn fixed_form(&self, decimals: usize) -> String {
        let digit = |i: i32| -> char {
            usize::try_from(i)
                .ok()
                .and_then(|i| self.digits.get(i))
                .map_or('0', |&d| char::from(d))
        };
        let mut out = String::from(self.sign());
        if self.dp > 0 {
            (0..self.dp).for_each(|i| out.push(digit(i)));
        } else {
            out.push('0');
        }
        if decimals > 0 {
            out.push('.');
            (0..decimals as i32).for_each(|i| out.push(digit(self.dp + i)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_value_is_the_shortest_form_with_gos_exponent_rule() {
        // fmt.Sprint of float64s.
        let cases = [
            (4.0, "4"),
            (4.5, "4.5"),
            (0.1, "0.1"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (999_999.5, "999999.5"),
            (1_234_567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(go_value(v), want, "{v}");
        }
    }

    #[test]
    fn format_g_rounds_to_the_precision_and_drops_zeros() {
        // fmt.Sprintf("%.4g", v).
        let cases = [
            (1234.5678, "1235"),
            (12345.0, "1.234e+04"),
            (1.5, "1.5"),
            (0.000123456, "0.0001235"),
            (0.0000123456, "1.235e-05"),
            (100.0, "100"),
            (999.99, "1000"),
            (-0.5, "-0.5"),
        ];
        for (v, want) in cases {
            assert_eq!(format_g(v, Some(4)), want, "{v}");
        }
        assert_eq!(format_f(2.0 / 3.0, 2), "0.67");
        assert_eq!(format_f(f64::NAN, 2), "NaN");
    }

    #[test]
    fn humanize_uses_si_prefixes() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (1234.0, "1.234k"),
            (1_234_567.0, "1.235M"),
            (-2_000_000_000.0, "-2G"),
            (0.00123, "1.23m"),
            (0.5, "500m"),
            (f64::INFINITY, "+Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(humanize(v), want, "{v}");
        }
    }

    #[test]
    fn humanize1024_uses_binary_prefixes() {
        assert_eq!(humanize1024(1.0), "1");
        assert_eq!(humanize1024(1024.0), "1ki");
        assert_eq!(humanize1024(1_048_576.0), "1Mi");
        assert_eq!(humanize1024(5.5 * 1024.0 * 1024.0 * 1024.0), "5.5Gi");
    }

    #[test]
    fn humanize_duration_spells_days_to_nanoseconds() {
        let cases = [
            (0.0, "0s"),
            (1.5, "1.5s"),
            (75.0, "1m 15s"),
            (3_725.0, "1h 2m 5s"),
            (90_061.0, "1d 1h 1m 1s"),
            (1_209_600.0, "14d 0h 0m 0s"),
            (-75.0, "-1m 15s"),
            (0.0025, "2.5ms"),
            (0.000_000_5, "500ns"),
        ];
        for (v, want) in cases {
            assert_eq!(humanize_duration(v), want, "{v}");
        }
    }

    #[test]
    fn humanize_percentage_and_timestamp() {
        assert_eq!(humanize_percentage(0.1234), "12.34%");
        assert_eq!(humanize_percentage(0.05), "5%");
        assert_eq!(
            humanize_timestamp(1_700_000_000.0),
            "2023-11-14 22:13:20 +0000 UTC"
        );
        assert_eq!(
            humanize_timestamp(1_700_000_000.5),
            "2023-11-14 22:13:20.5 +0000 UTC"
        );
        assert_eq!(humanize_timestamp(f64::NAN), "NaN");
    }
}
