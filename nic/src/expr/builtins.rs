//! The callable builtins (`str`, `int`, `float`, `len`, `bool`, `min`, `max`, `abs`) and the
//! allowed `str` methods.

use std::cmp::Ordering;

use super::check_len;
use super::error::{ExprErrorKind, type_err, value_err};
use super::eval::float_to_int;
use super::value::{Value, py_cmp};

const MANY: usize = usize::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Abs,
    Bool,
    Float,
    Int,
    Len,
    Max,
    Min,
    Str,
}

/// Name, builtin, least and most positional arguments.
const BUILTINS: &[(&str, Builtin, usize, usize)] = &[
    ("abs", Builtin::Abs, 1, 1),
    ("bool", Builtin::Bool, 0, 1),
    ("float", Builtin::Float, 0, 1),
    ("int", Builtin::Int, 0, 2),
    ("len", Builtin::Len, 1, 1),
    ("max", Builtin::Max, 1, MANY),
    ("min", Builtin::Min, 1, MANY),
    ("str", Builtin::Str, 0, 1),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Capitalize,
    Center,
    Count,
    EndsWith,
    Find,
    IsAlnum,
    IsAlpha,
    IsDigit,
    IsLower,
    IsSpace,
    IsUpper,
    Join,
    Ljust,
    Lower,
    Lstrip,
    Partition,
    Replace,
    Rfind,
    Rjust,
    Rpartition,
    Rsplit,
    Rstrip,
    Split,
    StartsWith,
    Strip,
    Title,
    Upper,
    Zfill,
}

/// Name, method, least and most positional arguments.
const METHODS: &[(&str, Method, usize, usize)] = &[
    ("capitalize", Method::Capitalize, 0, 0),
    ("center", Method::Center, 1, 2),
    ("count", Method::Count, 1, 1),
    ("endswith", Method::EndsWith, 1, 1),
    ("find", Method::Find, 1, 1),
    ("isalnum", Method::IsAlnum, 0, 0),
    ("isalpha", Method::IsAlpha, 0, 0),
    ("isdigit", Method::IsDigit, 0, 0),
    ("islower", Method::IsLower, 0, 0),
    ("isspace", Method::IsSpace, 0, 0),
    ("isupper", Method::IsUpper, 0, 0),
    ("join", Method::Join, 1, 1),
    ("ljust", Method::Ljust, 1, 2),
    ("lower", Method::Lower, 0, 0),
    ("lstrip", Method::Lstrip, 0, 1),
    ("partition", Method::Partition, 1, 1),
    ("replace", Method::Replace, 2, 3),
    ("rfind", Method::Rfind, 1, 1),
    ("rjust", Method::Rjust, 1, 2),
    ("rpartition", Method::Rpartition, 1, 1),
    ("rsplit", Method::Rsplit, 0, 2),
    ("rstrip", Method::Rstrip, 0, 1),
    ("split", Method::Split, 0, 2),
    ("startswith", Method::StartsWith, 1, 1),
    ("strip", Method::Strip, 0, 1),
    ("title", Method::Title, 0, 0),
    ("upper", Method::Upper, 0, 0),
    ("zfill", Method::Zfill, 1, 1),
];

fn entry<T: Copy + PartialEq>(
    table: &[(&'static str, T, usize, usize)],
    x: T,
) -> (&'static str, usize, usize) {
    table
        .iter()
        .find(|e| e.1 == x)
        .map_or(("?", 0, MANY), |&(name, _, min, max)| (name, min, max))
}

fn names<T>(table: &[(&str, T, usize, usize)]) -> String {
    table.iter().map(|e| e.0).collect::<Vec<_>>().join(", ")
}

impl Builtin {
    pub(crate) fn from_name(name: &str) -> Option<Builtin> {
        BUILTINS.iter().find(|e| e.0 == name).map(|e| e.1)
    }

    pub(crate) fn name(self) -> &'static str {
        entry(BUILTINS, self).0
    }

    pub(crate) fn arity(self) -> (usize, usize) {
        let (_, min, max) = entry(BUILTINS, self);
        (min, max)
    }

    /// The callable builtins, for messages.
    pub(crate) fn list() -> String {
        names(BUILTINS)
    }
}

impl Method {
    pub(crate) fn from_name(name: &str) -> Option<Method> {
        METHODS.iter().find(|e| e.0 == name).map(|e| e.1)
    }

    pub(crate) fn name(self) -> &'static str {
        entry(METHODS, self).0
    }

    pub(crate) fn arity(self) -> (usize, usize) {
        let (_, min, max) = entry(METHODS, self);
        (min, max)
    }

    /// The allowed str methods, for messages.
    pub(crate) fn list() -> String {
        names(METHODS)
    }
}

/// The `TypeError` message of a call of `name` with `given` arguments, if it is wrong.
pub(crate) fn arity_error(name: &str, min: usize, max: usize, given: usize) -> Option<String> {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let (bound, n) = match () {
        _ if (min..=max).contains(&given) => return None,
        _ if max == 0 => return Some(format!("{name}() takes no arguments ({given} given)")),
        _ if min == max => ("exactly", min),
        _ if given < min => ("at least", min),
        _ => ("at most", max),
    };
    Some(format!(
        "{name}() takes {bound} {n} {} ({given} given)",
        plural(n)
    ))
}

fn repr_of(s: &str) -> String {
    Value::Str(s.to_owned()).repr()
}

/// The items of a list, tuple or string (its characters), for `min`, `max` and `join`.
fn items_of(v: &Value) -> Option<Vec<Value>> {
    match v {
        Value::List(items) | Value::Tuple(items) => Some(items.clone()),
        Value::Str(s) => Some(s.chars().map(|c| Value::Str(c.to_string())).collect()),
        _ => None,
    }
}

pub(crate) fn call_builtin(builtin: Builtin, args: &[Value]) -> Result<Value, ExprErrorKind> {
    let arg = args.first();
    Ok(match builtin {
        Builtin::Str => Value::Str(arg.map(Value::to_string).unwrap_or_default()),
        Builtin::Bool => Value::Bool(arg.is_some_and(Value::truthy)),
        Builtin::Int => int_of(arg, args.get(1))?,
        Builtin::Float => Value::Float(match arg {
            None => 0.0,
            Some(Value::Float(f)) => *f,
            Some(Value::Str(s)) => parse_float(s)?,
            Some(v) => match v.as_index() {
                Some(i) => i as f64,
                None => {
                    return Err(type_err(format!(
                        "float() argument must be a string or a real number, not '{}'",
                        v.type_name()
                    )));
                }
            },
        }),
        Builtin::Len => Value::Int(match arg {
            Some(Value::Str(s)) => s.chars().count() as i64,
            Some(Value::List(v) | Value::Tuple(v)) => v.len() as i64,
            v => {
                let t = v.map_or("NoneType", Value::type_name);
                return Err(type_err(format!("object of type '{t}' has no len()")));
            }
        }),
        Builtin::Abs => match arg {
            Some(Value::Int(i)) => Value::Int(i.checked_abs().ok_or(ExprErrorKind::Overflow)?),
            Some(Value::Bool(b)) => Value::Int(i64::from(*b)),
            Some(Value::Float(f)) => Value::Float(f.abs()),
            v => {
                let t = v.map_or("NoneType", Value::type_name);
                return Err(type_err(format!("bad operand type for abs(): '{t}'")));
            }
        },
        Builtin::Min => min_max(args, "min", Ordering::Less)?,
        Builtin::Max => min_max(args, "max", Ordering::Greater)?,
    })
}

/// `min`/`max` of one iterable argument or of several arguments; the first best item wins.
fn min_max(args: &[Value], name: &str, wanted: Ordering) -> Result<Value, ExprErrorKind> {
    let owned;
    let items = match args {
        [one] => {
            owned = items_of(one)
                .ok_or_else(|| type_err(format!("'{}' object is not iterable", one.type_name())))?;
            owned.as_slice()
        }
        many => many,
    };
    let (first, rest) = items
        .split_first()
        .ok_or_else(|| value_err(format!("{name}() arg is an empty sequence")))?;
    let op = if wanted == Ordering::Less { "<" } else { ">" };
    let mut best = first;
    for item in rest {
        if py_cmp(item, best, op)? == Some(wanted) {
            best = item;
        }
    }
    Ok(best.clone())
}

fn int_of(arg: Option<&Value>, base: Option<&Value>) -> Result<Value, ExprErrorKind> {
    let Some(arg) = arg else {
        return Ok(Value::Int(0));
    };
    if let Some(base) = base {
        let base = base.as_index().ok_or_else(|| not_an_integer(base))?;
        if base != 0 && !(2..=36).contains(&base) {
            return Err(value_err("int() base must be >= 2 and <= 36, or 0"));
        }
        let Value::Str(s) = arg else {
            return Err(type_err(
                "int() can't convert non-string with explicit base",
            ));
        };
        return parse_int(s, base as u32).map(Value::Int);
    }
    match arg {
        Value::Float(f) => float_to_int(*f).map(Value::Int),
        Value::Str(s) => parse_int(s, 10).map(Value::Int),
        v => v.as_index().map(Value::Int).ok_or_else(|| {
            type_err(format!(
                "int() argument must be a string or a real number, not '{}'",
                v.type_name()
            ))
        }),
    }
}

fn not_an_integer(v: &Value) -> ExprErrorKind {
    type_err(format!(
        "'{}' object cannot be interpreted as an integer",
        v.type_name()
    ))
}

/// Python's `int(s, base)`: blanks around, a sign, a `0x`/`0o`/`0b` prefix matching the base
/// (any of them for base 0), digits with single underscores between them.
pub(crate) fn parse_int(s: &str, base: u32) -> Result<i64, ExprErrorKind> {
    let invalid = || {
        value_err(format!(
            "invalid literal for int() with base {base}: {}",
            repr_of(s)
        ))
    };
    let t = s.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let prefix = t.get(..2).map(str::to_ascii_lowercase);
    let (base, digits, prefixed) = match (base, prefix.as_deref()) {
        (0 | 16, Some("0x")) => (16, &t[2..], true),
        (0 | 8, Some("0o")) => (8, &t[2..], true),
        (0 | 2, Some("0b")) => (2, &t[2..], true),
        (0, _) => {
            // Base 0 refuses leading zeros, as Python's literals do: "010" but not "000".
            if t.starts_with('0') && t.chars().any(|c| c != '0' && c != '_') {
                return Err(invalid());
            }
            (10, t, false)
        }
        (b, _) => (b, t, false),
    };
    let digits = if prefixed {
        digits.strip_prefix('_').unwrap_or(digits)
    } else {
        digits
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err(invalid());
    }
    let mut magnitude: u64 = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        let d = c.to_digit(base).ok_or_else(invalid)?;
        magnitude = magnitude
            .checked_mul(u64::from(base))
            .and_then(|m| m.checked_add(u64::from(d)))
            .ok_or(ExprErrorKind::Overflow)?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
            .ok_or(ExprErrorKind::Overflow)
    } else {
        i64::try_from(magnitude).map_err(|_| ExprErrorKind::Overflow)
    }
}

/// Python's `float(s)`: blanks around, decimal or `inf`/`infinity`/`nan` in any case,
/// underscores only between digits.
pub(crate) fn parse_float(s: &str) -> Result<f64, ExprErrorKind> {
    let invalid = || value_err(format!("could not convert string to float: {}", repr_of(s)));
    let t = s.trim();
    let bytes = t.as_bytes();
    let underscores_ok = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    });
    if !underscores_ok {
        return Err(invalid());
    }
    t.replace('_', "").parse::<f64>().map_err(|_| invalid())
}

fn str_arg(args: &[Value], i: usize, method: Method) -> Result<&str, ExprErrorKind> {
    match args.get(i) {
        Some(Value::Str(s)) => Ok(s),
        other => Err(type_err(format!(
            "{}() argument {} must be str, not {}",
            method.name(),
            i + 1,
            other.map_or("NoneType", Value::type_name)
        ))),
    }
}

/// An optional str argument; `None` (or its absence) means the default.
fn opt_str_arg(args: &[Value], i: usize) -> Result<Option<&str>, ExprErrorKind> {
    match args.get(i) {
        None | Some(Value::None) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(other) => Err(type_err(format!(
            "must be str or None, not {}",
            other.type_name()
        ))),
    }
}

fn int_arg(args: &[Value], i: usize, default: i64) -> Result<i64, ExprErrorKind> {
    match args.get(i) {
        None => Ok(default),
        Some(v) => v.as_index().ok_or_else(|| not_an_integer(v)),
    }
}

/// A width argument, refused above [`MAX_VALUE_LEN`](super::MAX_VALUE_LEN) before any padding.
fn width_arg(args: &[Value], i: usize) -> Result<usize, ExprErrorKind> {
    let width = usize::try_from(int_arg(args, i, 0)?.max(0)).unwrap_or(usize::MAX);
    check_len(width)?;
    Ok(width)
}

fn strs(items: Vec<&str>) -> Vec<Value> {
    items.into_iter().map(Value::from).collect()
}

/// Calls the str method `method` on `s`.
pub(crate) fn call_method(s: &str, method: Method, args: &[Value]) -> Result<Value, ExprErrorKind> {
    use Method as M;
    let boolean = |f: fn(char) -> bool| Value::Bool(!s.is_empty() && s.chars().all(f));
    let char_index = |byte: Option<usize>| byte.map_or(-1, |b| s[..b].chars().count() as i64);
    Ok(match method {
        M::Lower => Value::Str(s.to_lowercase()),
        M::Upper => Value::Str(s.to_uppercase()),
        M::Strip | M::Lstrip | M::Rstrip => {
            let chars = opt_str_arg(args, 0)?;
            let strip = |c: char| chars.map_or(c.is_whitespace(), |set| set.contains(c));
            Value::from(match method {
                M::Strip => s.trim_matches(strip),
                M::Lstrip => s.trim_start_matches(strip),
                _ => s.trim_end_matches(strip),
            })
        }
        M::Split | M::Rsplit => {
            let sep = opt_str_arg(args, 0)?;
            let max = usize::try_from(int_arg(args, 1, -1)?).ok();
            Value::List(strs(split(s, sep, max, method == M::Rsplit)?))
        }
        M::Replace => {
            let (old, new) = (str_arg(args, 0, method)?, str_arg(args, 1, method)?);
            let all = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old).count()
            };
            let n = usize::try_from(int_arg(args, 2, -1)?).map_or(all, |count| count.min(all));
            let len = n
                .checked_mul(new.len())
                .and_then(|added| (s.len() - n * old.len()).checked_add(added))
                .ok_or(ExprErrorKind::TooLarge {
                    max: super::MAX_VALUE_LEN,
                })?;
            check_len(len)?;
            Value::Str(s.replacen(old, new, n))
        }
        M::StartsWith | M::EndsWith => {
            let name = method.name();
            let affixes: Vec<&str> = match args.first() {
                Some(Value::Str(a)) => vec![a],
                Some(Value::Tuple(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str().ok_or_else(|| {
                            type_err(format!(
                                "tuple for {name} must only contain str, not {}",
                                v.type_name()
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(type_err(format!(
                        "{name} first arg must be str or a tuple of str, not {}",
                        other.map_or("NoneType", Value::type_name)
                    )));
                }
            };
            let starts = method == M::StartsWith;
            Value::Bool(affixes.iter().any(|a| {
                if starts {
                    s.starts_with(a)
                } else {
                    s.ends_with(a)
                }
            }))
        }
        M::Join => {
            let items = args
                .first()
                .and_then(items_of)
                .ok_or_else(|| type_err("can only join an iterable"))?;
            let mut len = s.len().saturating_mul(items.len().saturating_sub(1));
            for (i, item) in items.iter().enumerate() {
                let part = item.as_str().ok_or_else(|| {
                    type_err(format!(
                        "sequence item {i}: expected str instance, {} found",
                        item.type_name()
                    ))
                })?;
                len = len.saturating_add(part.len());
            }
            check_len(len)?;
            let parts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            Value::Str(parts.join(s))
        }
        M::Find => Value::Int(char_index(s.find(str_arg(args, 0, method)?))),
        M::Rfind => Value::Int(char_index(s.rfind(str_arg(args, 0, method)?))),
        M::Count => {
            let sub = str_arg(args, 0, method)?;
            let n = if sub.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(sub).count()
            };
            Value::Int(n as i64)
        }
        M::Zfill => {
            let width = width_arg(args, 0)?;
            let fill = width.saturating_sub(s.chars().count());
            let (sign, digits) = match s.chars().next() {
                Some(c @ ('+' | '-')) => s.split_at(c.len_utf8()),
                _ => ("", s),
            };
            Value::Str(format!("{sign}{}{digits}", "0".repeat(fill)))
        }
        M::Ljust | M::Rjust | M::Center => {
            let width = width_arg(args, 0)?;
            let fill = match args.get(1) {
                None => ' ',
                Some(Value::Str(f)) if f.chars().count() == 1 => f.chars().next().unwrap_or(' '),
                Some(_) => {
                    return Err(type_err(
                        "The fill character must be exactly one character long",
                    ));
                }
            };
            let margin = width.saturating_sub(s.chars().count());
            let left = match method {
                M::Ljust => 0,
                M::Rjust => margin,
                // Python's rounding: the odd space goes left when both margin and width are odd.
                _ => margin / 2 + (margin & width & 1),
            };
            let pad = |n: usize| std::iter::repeat_n(fill, n).collect::<String>();
            Value::Str(format!("{}{s}{}", pad(left), pad(margin - left)))
        }
        M::IsDigit => boolean(char::is_numeric),
        M::IsAlpha => boolean(char::is_alphabetic),
        M::IsAlnum => boolean(char::is_alphanumeric),
        M::IsSpace => boolean(char::is_whitespace),
        M::IsLower => {
            Value::Bool(s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase))
        }
        M::IsUpper => {
            Value::Bool(s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase))
        }
        M::Title => {
            let mut out = String::with_capacity(s.len());
            let mut after_cased = false;
            for c in s.chars() {
                if after_cased {
                    out.extend(c.to_lowercase());
                } else {
                    out.extend(c.to_uppercase());
                }
                after_cased = c.is_lowercase() || c.is_uppercase();
            }
            Value::Str(out)
        }
        M::Capitalize => {
            let mut chars = s.chars();
            Value::Str(match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.as_str().to_lowercase().chars())
                    .collect(),
                None => String::new(),
            })
        }
        M::Partition | M::Rpartition => {
            let sep = str_arg(args, 0, method)?;
            if sep.is_empty() {
                return Err(value_err("empty separator"));
            }
            let found = if method == M::Partition {
                s.find(sep)
            } else {
                s.rfind(sep)
            };
            let parts = match found {
                Some(i) => [&s[..i], sep, &s[i + sep.len()..]],
                None if method == M::Partition => [s, "", ""],
                None => ["", "", s],
            };
            Value::Tuple(strs(parts.to_vec()))
        }
    })
}

/// `str.split`/`str.rsplit` with an optional separator (`None`: runs of blanks, no empty
/// parts) and an optional maximum number of splits.
fn split<'a>(
    s: &'a str,
    sep: Option<&str>,
    max: Option<usize>,
    from_right: bool,
) -> Result<Vec<&'a str>, ExprErrorKind> {
    match sep {
        Some("") => Err(value_err("empty separator")),
        Some(sep) => Ok(match (max, from_right) {
            (None, _) => s.split(sep).collect(),
            (Some(n), false) => s.splitn(n.saturating_add(1), sep).collect(),
            (Some(n), true) => {
                let mut parts: Vec<&str> = s.rsplitn(n.saturating_add(1), sep).collect();
                parts.reverse();
                parts
            }
        }),
        None => {
            let mut parts = Vec::new();
            let mut rest = if from_right {
                s.trim_end()
            } else {
                s.trim_start()
            };
            while !rest.is_empty() {
                if Some(parts.len()) == max {
                    parts.push(rest);
                    break;
                }
                let blank = if from_right {
                    rest.rfind(char::is_whitespace)
                } else {
                    rest.find(char::is_whitespace)
                };
                let Some(i) = blank else {
                    parts.push(rest);
                    break;
                };
                let width = rest[i..].chars().next().map_or(1, char::len_utf8);
                if from_right {
                    parts.push(&rest[i + width..]);
                    rest = rest[..i].trim_end();
                } else {
                    parts.push(&rest[..i]);
                    rest = rest[i..].trim_start();
                }
            }
            if from_right {
                parts.reverse();
            }
            Ok(parts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str, method: &str, args: &[Value]) -> Value {
        let method = Method::from_name(method).expect("known method");
        call_method(s, method, args).unwrap_or_else(|e| Value::Str(format!("ERR {e}")))
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| Value::from(*s)).collect())
    }

    #[test]
    fn tables_are_consistent() {
        for (name, b, _, _) in BUILTINS {
            assert_eq!(Builtin::from_name(name), Some(*b));
            assert_eq!(b.name(), *name);
        }
        for (name, method, _, _) in METHODS {
            assert_eq!(Method::from_name(name), Some(*method));
            assert_eq!(method.name(), *name);
        }
        assert_eq!(Builtin::from_name("eval"), None);
        assert_eq!(Method::from_name("format"), None);
    }

    #[test]
    fn arity_messages() {
        assert_eq!(
            arity_error("len", 1, 1, 2).unwrap(),
            "len() takes exactly 1 argument (2 given)"
        );
        assert_eq!(
            arity_error("lower", 0, 0, 1).unwrap(),
            "lower() takes no arguments (1 given)"
        );
        assert_eq!(
            arity_error("split", 0, 2, 3).unwrap(),
            "split() takes at most 2 arguments (3 given)"
        );
        assert_eq!(
            arity_error("replace", 2, 3, 1).unwrap(),
            "replace() takes at least 2 arguments (1 given)"
        );
        assert_eq!(arity_error("max", 1, MANY, 7), None);
    }

    #[test]
    fn split_and_rsplit() {
        assert_eq!(
            m("alice@example.com", "split", &["@".into()]),
            list(&["alice", "example.com"])
        );
        assert_eq!(m("  a b  c ", "split", &[]), list(&["a", "b", "c"]));
        assert_eq!(
            m("  a b  c ", "split", &[Value::None, 1.into()]),
            list(&["a", "b  c "])
        );
        assert_eq!(
            m("  a b  c ", "rsplit", &[Value::None, 1.into()]),
            list(&["  a b", "c"])
        );
        assert_eq!(
            m("a,b,,c", "split", &[",".into()]),
            list(&["a", "b", "", "c"])
        );
        assert_eq!(
            m("a,b,c", "split", &[",".into(), 1.into()]),
            list(&["a", "b,c"])
        );
        assert_eq!(
            m("a,b,c", "rsplit", &[",".into(), 1.into()]),
            list(&["a,b", "c"])
        );
        assert_eq!(m("", "split", &[]), list(&[]));
        assert_eq!(m("", "split", &[",".into()]), list(&[""]));
        assert_eq!(
            m("a", "split", &["".into()]),
            Value::from("ERR empty separator")
        );
        assert_eq!(
            m("a b", "split", &[1.into()]),
            Value::from("ERR must be str or None, not int")
        );
    }

    #[test]
    fn strip_replace_affixes() {
        assert_eq!(m("  x \n", "strip", &[]), "x".into());
        assert_eq!(m("xxayxx", "strip", &["x".into()]), "ay".into());
        assert_eq!(m("xxay", "lstrip", &["x".into()]), "ay".into());
        assert_eq!(m("ayxx", "rstrip", &["xy".into()]), "a".into());
        assert_eq!(
            m("aaa", "replace", &["a".into(), "bb".into()]),
            "bbbbbb".into()
        );
        assert_eq!(
            m("aaa", "replace", &["a".into(), "b".into(), 2.into()]),
            "bba".into()
        );
        assert_eq!(m("ab", "replace", &["".into(), "-".into()]), "-a-b-".into());
        assert_eq!(m("abc", "startswith", &["ab".into()]), true.into());
        assert_eq!(
            m(
                "abc",
                "endswith",
                &[Value::Tuple(vec!["x".into(), "bc".into()])]
            ),
            true.into()
        );
        assert_eq!(
            m("abc", "startswith", &[1.into()]),
            "ERR startswith first arg must be str or a tuple of str, not int".into()
        );
    }

    #[test]
    fn search_join_pad_case() {
        assert_eq!(m("héllo", "find", &["l".into()]), 2.into());
        assert_eq!(m("héllo", "rfind", &["l".into()]), 3.into());
        assert_eq!(m("héllo", "find", &["z".into()]), (-1).into());
        assert_eq!(m("aaaa", "count", &["aa".into()]), 2.into());
        assert_eq!(m("ab", "count", &["".into()]), 3.into());
        assert_eq!(m("-", "join", &[list(&["a", "b", "c"])]), "a-b-c".into());
        assert_eq!(m("-", "join", &["abc".into()]), "a-b-c".into());
        assert_eq!(
            m("-", "join", &[Value::List(vec!["a".into(), 1.into()])]),
            "ERR sequence item 1: expected str instance, int found".into()
        );
        assert_eq!(m("-42", "zfill", &[6.into()]), "-00042".into());
        assert_eq!(m("42", "zfill", &[1.into()]), "42".into());
        assert_eq!(m("ab", "center", &[5.into(), "*".into()]), "**ab*".into());
        assert_eq!(m("abc", "center", &[6.into()]), " abc  ".into());
        assert_eq!(m("ab", "ljust", &[4.into(), ".".into()]), "ab..".into());
        assert_eq!(m("ab", "rjust", &[4.into()]), "  ab".into());
        assert_eq!(m("hello wORLD 1a", "title", &[]), "Hello World 1A".into());
        assert_eq!(m("hELLO", "capitalize", &[]), "Hello".into());
        assert_eq!(
            m("a=b=c", "partition", &["=".into()]),
            Value::Tuple(vec!["a".into(), "=".into(), "b=c".into()])
        );
        assert_eq!(
            m("a=b=c", "rpartition", &["=".into()]),
            Value::Tuple(vec!["a=b".into(), "=".into(), "c".into()])
        );
        assert_eq!(
            m("abc", "rpartition", &["=".into()]),
            Value::Tuple(vec!["".into(), "".into(), "abc".into()])
        );
        assert_eq!(m("123", "isdigit", &[]), true.into());
        assert_eq!(m("", "isdigit", &[]), false.into());
        assert_eq!(m("ab1", "isalpha", &[]), false.into());
        assert_eq!(m("ab1", "islower", &[]), true.into());
    }

    #[test]
    fn huge_results_fail_before_allocating() {
        let big = i64::MAX.into();
        let too_large = format!(
            "ERR result too large (the limit is {} bytes or items)",
            super::super::MAX_VALUE_LEN
        );
        assert_eq!(m("x", "zfill", &[big]), too_large.as_str().into());
        assert_eq!(
            m("x", "center", &[1_000_000_000.into()]),
            too_large.as_str().into()
        );
        let s = "a".repeat(60_000);
        assert_eq!(
            m(&s, "replace", &["a".into(), "bb".into()]),
            too_large.as_str().into()
        );
    }

    #[test]
    fn builtins() {
        let call = |b: &str, args: &[Value]| {
            call_builtin(Builtin::from_name(b).unwrap(), args)
                .unwrap_or_else(|e| Value::Str(format!("ERR {e}")))
        };
        assert_eq!(call("str", &[1.5.into()]), "1.5".into());
        assert_eq!(call("str", &[]), "".into());
        assert_eq!(call("int", &[" -42 ".into()]), (-42).into());
        assert_eq!(call("int", &["ff".into(), 16.into()]), 255.into());
        assert_eq!(call("int", &["0x_ff".into(), 0.into()]), 255.into());
        assert_eq!(call("int", &["1_000".into()]), 1000.into());
        assert_eq!(
            call("int", &["010".into(), 0.into()]),
            "ERR invalid literal for int() with base 0: '010'".into()
        );
        assert_eq!(
            call("int", &["12a".into()]),
            "ERR invalid literal for int() with base 10: '12a'".into()
        );
        assert_eq!(
            call("int", &["-9223372036854775808".into()]),
            i64::MIN.into()
        );
        assert_eq!(
            call("int", &["9223372036854775808".into()]),
            "ERR integer overflow".into()
        );
        assert_eq!(call("int", &[(-3.9).into()]), (-3).into());
        assert_eq!(call("int", &[true.into()]), 1.into());
        assert_eq!(
            call("int", &[1.into(), 10.into()]),
            "ERR int() can't convert non-string with explicit base".into()
        );
        assert_eq!(
            call("int", &["1".into(), 1.into()]),
            "ERR int() base must be >= 2 and <= 36, or 0".into()
        );
        assert_eq!(call("float", &[" 1_0.5 ".into()]), 10.5.into());
        assert_eq!(
            call("float", &["-Infinity".into()]),
            f64::NEG_INFINITY.into()
        );
        assert_eq!(
            call("float", &["1__0".into()]),
            "ERR could not convert string to float: '1__0'".into()
        );
        assert_eq!(call("float", &[3.into()]), 3.0.into());
        assert_eq!(call("len", &["héllo".into()]), 5.into());
        assert_eq!(
            call("len", &[3.into()]),
            "ERR object of type 'int' has no len()".into()
        );
        assert_eq!(call("bool", &["".into()]), false.into());
        assert_eq!(call("min", &[3.into(), 1.5.into(), 2.into()]), 1.5.into());
        assert_eq!(call("max", &[list(&["b", "c", "a"])]), "c".into());
        assert_eq!(call("max", &["bca".into()]), "c".into());
        assert_eq!(
            call("min", &[list(&[])]),
            "ERR min() arg is an empty sequence".into()
        );
        assert_eq!(
            call("max", &[1.into(), "a".into()]),
            "ERR '>' not supported between instances of 'str' and 'int'".into()
        );
        assert_eq!(call("abs", &[(-3).into()]), 3.into());
        assert_eq!(
            call("abs", &[i64::MIN.into()]),
            "ERR integer overflow".into()
        );
    }
}
