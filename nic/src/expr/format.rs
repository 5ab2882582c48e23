//! printf-style formatting (`"..." % args`) and Python's float-to-text rules.

use super::check_len;
use super::error::{ExprErrorKind, type_err, value_err};
use super::eval::float_to_int;
use super::value::Value;

/// Python's `repr(float)`: the shortest text that reads back to the same float, positional
/// for exponents -4..16 and scientific (`1e+16`, `1e-05`) otherwise.
pub(crate) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, e.g. "-1.25e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = split_exponent(&sci);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let body = if (-4..16).contains(&exp) {
        if exp >= 0 {
            let point = exp.unsigned_abs() as usize + 1;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        } else {
            format!("0.{}{digits}", "0".repeat(exp.unsigned_abs() as usize - 1))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        format!("{first}{point}{rest}{}", exponent_suffix('e', exp))
    };
    format!("{sign}{body}")
}

/// Splits Rust's `1.5e-7` into `("1.5", -7)`.
fn split_exponent(s: &str) -> (&str, i32) {
    match s.split_once('e') {
        Some((m, e)) => (m, e.parse().unwrap_or(0)),
        None => (s, 0),
    }
}

/// Python's exponent suffix: `e+05`, `E-12`.
fn exponent_suffix(letter: char, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{letter}{sign}{:02}", exp.unsigned_abs())
}

/// Removes trailing zeros after a decimal point, and the point if nothing follows it.
fn strip_zeros(s: &mut String) {
    if s.contains('.') {
        let keep = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(keep);
    }
}

/// `%e` of a finite, non-negative float.
fn format_exp(x: f64, precision: usize, upper: bool, alt: bool) -> String {
    let s = format!("{x:.precision$e}");
    let (mantissa, exp) = split_exponent(&s);
    let point = if alt && precision == 0 { "." } else { "" };
    format!(
        "{mantissa}{point}{}",
        exponent_suffix(if upper { 'E' } else { 'e' }, exp)
    )
}

/// `%g` of a finite, non-negative float: `%e` or `%f` by the exponent, trailing zeros removed
/// unless `alt` (`#`).
fn format_general(x: f64, precision: usize, upper: bool, alt: bool) -> String {
    let p = precision.max(1);
    let sci = format!("{x:.prec$e}", prec = p - 1);
    let (mantissa, exp) = split_exponent(&sci);
    let fixed_form = exp >= -4 && i64::from(exp) < p as i64;
    let (mut digits, suffix) = if fixed_form {
        let decimals = (p as i64 - 1 - i64::from(exp)).max(0) as usize;
        (format!("{x:.decimals$}"), String::new())
    } else {
        (
            mantissa.to_owned(),
            exponent_suffix(if upper { 'E' } else { 'e' }, exp),
        )
    };
    if !alt {
        strip_zeros(&mut digits);
    } else if !digits.contains('.') {
        digits.push('.');
    }
    digits + &suffix
}

/// One `%` conversion specifier after its flags, width and precision have been read.
#[derive(Default)]
struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
}

impl Spec {
    fn sign(&self, negative: bool) -> &'static str {
        match (negative, self.plus, self.space) {
            (true, _, _) => "-",
            (false, true, _) => "+",
            (false, false, true) => " ",
            _ => "",
        }
    }

    /// Appends `prefix` (sign, `0x`) and `body`, padded to the width.
    fn pad(
        &self,
        out: &mut String,
        prefix: &str,
        body: &str,
        numeric: bool,
    ) -> Result<(), ExprErrorKind> {
        let len = prefix.chars().count() + body.chars().count();
        let fill = self.width.saturating_sub(len);
        check_len(out.len() + prefix.len() + body.len() + fill)?;
        let fill_with = |out: &mut String, c: char| out.extend(std::iter::repeat_n(c, fill));
        if self.left {
            out.push_str(prefix);
            out.push_str(body);
            fill_with(out, ' ');
        } else if self.zero && numeric {
            out.push_str(prefix);
            fill_with(out, '0');
            out.push_str(body);
        } else {
            fill_with(out, ' ');
            out.push_str(prefix);
            out.push_str(body);
        }
        Ok(())
    }
}

/// The arguments of a format, taken one by one.
struct Args<'a> {
    items: &'a [Value],
    next: usize,
}

impl<'a> Args<'a> {
    fn take(&mut self) -> Result<&'a Value, ExprErrorKind> {
        let item = self
            .items
            .get(self.next)
            .ok_or_else(|| type_err("not enough arguments for format string"))?;
        self.next += 1;
        Ok(item)
    }

    fn take_star(&mut self) -> Result<i64, ExprErrorKind> {
        self.take()?
            .as_index()
            .ok_or_else(|| type_err("* wants int"))
    }
}

/// Reads a decimal number of a width or precision, refusing any above [`MAX_VALUE_LEN`].
fn read_number(chars: &[char], i: &mut usize) -> Result<usize, ExprErrorKind> {
    let mut n = 0usize;
    while let Some(d) = chars.get(*i).and_then(|c| c.to_digit(10)) {
        n = n * 10 + d as usize;
        check_len(n)?;
        *i += 1;
    }
    Ok(n)
}

fn star_to_len(n: i64) -> Result<usize, ExprErrorKind> {
    let n = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
    check_len(n)?;
    Ok(n)
}

/// `fmt % arg`: a tuple gives the arguments, any other value is the only argument.
pub(crate) fn percent_format(fmt: &str, arg: &Value) -> Result<String, ExprErrorKind> {
    let items = match arg {
        Value::Tuple(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    let mut args = Args { items, next: 0 };
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        if chars.get(i) == Some(&'(') {
            return Err(type_err("format requires a mapping"));
        }
        while let Some(&flag) = chars.get(i) {
            match flag {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.alt = true,
                '0' => spec.zero = true,
                _ => break,
            }
            i += 1;
        }
        if chars.get(i) == Some(&'*') {
            i += 1;
            let w = args.take_star()?;
            spec.left |= w < 0;
            spec.width = star_to_len(w)?;
        } else {
            spec.width = read_number(&chars, &mut i)?;
        }
        if chars.get(i) == Some(&'.') {
            i += 1;
            spec.precision = Some(if chars.get(i) == Some(&'*') {
                i += 1;
                star_to_len(args.take_star()?.max(0))?
            } else {
                read_number(&chars, &mut i)?
            });
        }
        while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&conversion) = chars.get(i) else {
            return Err(value_err("incomplete format"));
        };
        let index = i;
        i += 1;
        convert(&mut out, conversion, index, &spec, &mut args)?;
    }
    if args.next < args.items.len() {
        return Err(type_err(
            "not all arguments converted during string formatting",
        ));
    }
    check_len(out.len())?;
    Ok(out)
}

fn convert(
    out: &mut String,
    conversion: char,
    index: usize,
    spec: &Spec,
    args: &mut Args<'_>,
) -> Result<(), ExprErrorKind> {
    match conversion {
        '%' => {
            out.push('%');
            Ok(())
        }
        's' | 'r' | 'a' => {
            let v = args.take()?;
            let mut text = match conversion {
                's' => v.to_string(),
                'r' => v.repr(),
                _ => v.ascii(),
            };
            if let Some(p) = spec.precision
                && let Some((cut, _)) = text.char_indices().nth(p)
            {
                text.truncate(cut);
            }
            spec.pad(out, "", &text, false)
        }
        'd' | 'i' | 'u' => {
            let n = match args.take()? {
                Value::Float(f) => float_to_int(*f)?,
                v => v.as_index().ok_or_else(|| {
                    type_err(format!(
                        "%{conversion} format: a real number is required, not {}",
                        v.type_name()
                    ))
                })?,
            };
            let digits = zero_extend(n.unsigned_abs().to_string(), spec.precision);
            spec.pad(out, spec.sign(n < 0), &digits, true)
        }
        'x' | 'X' | 'o' => {
            let v = args.take()?;
            let n = v.as_index().ok_or_else(|| {
                type_err(format!(
                    "%{conversion} format: an integer is required, not {}",
                    v.type_name()
                ))
            })?;
            let (digits, base_prefix) = match conversion {
                'x' => (format!("{:x}", n.unsigned_abs()), "0x"),
                'X' => (format!("{:X}", n.unsigned_abs()), "0X"),
                _ => (format!("{:o}", n.unsigned_abs()), "0o"),
            };
            let digits = zero_extend(digits, spec.precision);
            let prefix = format!(
                "{}{}",
                spec.sign(n < 0),
                if spec.alt { base_prefix } else { "" }
            );
            spec.pad(out, &prefix, &digits, true)
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let v = args.take()?;
            let x = match v {
                Value::Float(f) => *f,
                v => v.as_index().map(|i| i as f64).ok_or_else(|| {
                    type_err(format!("must be real number, not {}", v.type_name()))
                })?,
            };
            let upper = conversion.is_ascii_uppercase();
            if !x.is_finite() {
                let text = match (x.is_nan(), upper) {
                    (true, false) => "nan",
                    (true, true) => "NAN",
                    (false, false) => "inf",
                    (false, true) => "INF",
                };
                return spec.pad(out, spec.sign(x < 0.0), text, true);
            }
            let precision = spec.precision.unwrap_or(6);
            let body = match conversion.to_ascii_lowercase() {
                'e' => format_exp(x.abs(), precision, upper, spec.alt),
                'f' => {
                    let mut s = format!("{:.precision$}", x.abs());
                    if spec.alt && precision == 0 {
                        s.push('.');
                    }
                    s
                }
                _ => format_general(x.abs(), precision, upper, spec.alt),
            };
            spec.pad(out, spec.sign(x.is_sign_negative()), &body, true)
        }
        'c' => {
            let text = match args.take()? {
                Value::Str(s) if s.chars().count() == 1 => s.clone(),
                v => {
                    let n = v
                        .as_index()
                        .ok_or_else(|| type_err("%c requires int or char"))?;
                    u32::try_from(n)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| value_err("%c arg not in range(0x110000)"))?
                        .to_string()
                }
            };
            spec.pad(out, "", &text, false)
        }
        other => Err(value_err(format!(
            "unsupported format character '{other}' (0x{:x}) at index {index}",
            u32::from(other)
        ))),
    }
}

/// Pads integer digits with leading zeros to the precision (`%.3d` of 5 is `005`).
fn zero_extend(digits: String, precision: Option<usize>) -> String {
    match precision {
        Some(p) if p > digits.len() => "0".repeat(p - digits.len()) + &digits,
        _ => digits,
    }
}

#[cfg(test)]
mod tests {
    use super::super::MAX_VALUE_LEN;
    use super::*;

    fn fmt(f: &str, arg: Value) -> String {
        percent_format(f, &arg).unwrap_or_else(|e| format!("ERR {e}"))
    }

    fn tuple(items: Vec<Value>) -> Value {
        Value::Tuple(items)
    }

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (123.456, "123.456"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.2345e-7, "1.2345e-07"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "{x}");
        }
    }

    #[test]
    fn strings_and_ints() {
        assert_eq!(fmt("ip=%s", "10.0.0.1".into()), "ip=10.0.0.1");
        assert_eq!(fmt("%s;%s", tuple(vec!["a".into(), 1.into()])), "a;1");
        assert_eq!(fmt("%r", "a".into()), "'a'");
        assert_eq!(fmt("%a", "é".into()), "'\\xe9'");
        assert_eq!(fmt("%s", Value::List(vec![1.into()])), "[1]");
        assert_eq!(
            fmt(
                "[%-5s|%5s|%.2s]",
                tuple(vec!["ab".into(), "cd".into(), "xyz".into()])
            ),
            "[ab   |   cd|xy]"
        );
        assert_eq!(
            fmt(
                "%05d|%+d|% d|%d",
                tuple(vec![(-42).into(), 5.into(), 5.into(), true.into()])
            ),
            "-0042|+5| 5|1"
        );
        assert_eq!(
            fmt(
                "%.3d|%i|%u",
                tuple(vec![5.into(), 3.9.into(), (-3.9).into()])
            ),
            "005|3|-3"
        );
        assert_eq!(
            fmt(
                "%x|%X|%o|%#x|%#o|%#06x",
                tuple(vec![
                    255.into(),
                    255.into(),
                    8.into(),
                    (-255).into(),
                    8.into(),
                    255.into()
                ])
            ),
            "ff|FF|10|-0xff|0o10|0x00ff"
        );
        assert_eq!(
            fmt(
                "%*d|%-*d|%.*s",
                tuple(vec![
                    4.into(),
                    7.into(),
                    3.into(),
                    7.into(),
                    1.into(),
                    "xy".into()
                ])
            ),
            "   7|7  |x"
        );
        assert_eq!(fmt("%c%c", tuple(vec![65.into(), "é".into()])), "Aé");
        assert_eq!(fmt("100%%", tuple(vec![])), "100%");
        assert_eq!(fmt("%ld", 3.into()), "3");
    }

    #[test]
    fn floats() {
        assert_eq!(fmt("%f", 1.5.into()), "1.500000");
        assert_eq!(fmt("%.2f", 2.675.into()), "2.67");
        assert_eq!(fmt("%8.3f|", (-1.23456).into()), "  -1.235|");
        assert_eq!(fmt("%08.3f", (-1.23456).into()), "-001.235");
        assert_eq!(
            fmt("%.0f|%#.0f", tuple(vec![2.5.into(), 2.5.into()])),
            "2|2."
        );
        assert_eq!(
            fmt("%e|%E", tuple(vec![12345.678.into(), 0.00012.into()])),
            "1.234568e+04|1.200000E-04"
        );
        assert_eq!(
            fmt(
                "%g|%g|%g|%g",
                tuple(vec![
                    0.0001.into(),
                    0.00001.into(),
                    123456.into(),
                    1234567.into()
                ])
            ),
            "0.0001|1e-05|123456|1.23457e+06"
        );
        assert_eq!(
            fmt(
                "%g|%#g|%.3g|%G",
                tuple(vec![0.0.into(), 1.0.into(), 2.0.into(), 1e-10.into()])
            ),
            "0|1.00000|2|1E-10"
        );
        assert_eq!(
            fmt(
                "%f|%5.1F|%e",
                tuple(vec![
                    f64::INFINITY.into(),
                    f64::NAN.into(),
                    f64::NEG_INFINITY.into()
                ])
            ),
            "inf|  NAN|-inf"
        );
        assert_eq!(fmt("%f", 3.into()), "3.000000");
        assert_eq!(fmt("%05f", f64::INFINITY.into()), "00inf");
    }

    #[test]
    fn errors_read_like_python() {
        assert_eq!(
            fmt("%s %s", "a".into()),
            "ERR not enough arguments for format string"
        );
        assert_eq!(
            fmt("%s", tuple(vec![1.into(), 2.into()])),
            "ERR not all arguments converted during string formatting"
        );
        assert_eq!(
            fmt("abc", 5.into()),
            "ERR not all arguments converted during string formatting"
        );
        assert_eq!(
            fmt("%d", "x".into()),
            "ERR %d format: a real number is required, not str"
        );
        assert_eq!(
            fmt("%x", 1.5.into()),
            "ERR %x format: an integer is required, not float"
        );
        assert_eq!(fmt("%f", "x".into()), "ERR must be real number, not str");
        assert_eq!(fmt("ab%", 1.into()), "ERR incomplete format");
        assert_eq!(
            fmt("a%z", 1.into()),
            "ERR unsupported format character 'z' (0x7a) at index 2"
        );
        assert_eq!(fmt("%(x)s", 1.into()), "ERR format requires a mapping");
        assert_eq!(fmt("%c", (-1).into()), "ERR %c arg not in range(0x110000)");
        assert_eq!(fmt("%c", "ab".into()), "ERR %c requires int or char");
        assert_eq!(
            fmt("%d", f64::NAN.into()),
            "ERR cannot convert float NaN to integer"
        );
    }

    #[test]
    fn huge_widths_fail_before_allocating() {
        let too_large =
            format!("ERR result too large (the limit is {MAX_VALUE_LEN} bytes or items)");
        assert_eq!(fmt("%999999999999999999999999d", 1.into()), too_large);
        assert_eq!(fmt("%.999999999f", 1.into()), too_large);
        assert_eq!(
            fmt("%*s", tuple(vec![i64::MIN.into(), "x".into()])),
            too_large
        );
        assert_eq!(fmt("%65536s", "".into()).len(), 65536);
        assert_eq!(fmt("x%65536s", "".into()), too_large);
    }
}
