//! Values of the expression language and their Python behaviour: `str()`, `repr()`,
//! truthiness, `==` and ordering.

use std::cmp::Ordering;
use std::fmt;

use super::error::{ExprErrorKind, type_err};
use super::format::float_repr;

/// A value read from the environment or produced by an expression.
///
/// The derived `PartialEq` is structural (`Int(1) != Float(1.0)`); the expression's own `==`
/// follows Python (`1 == 1.0 == True`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
}

impl Value {
    /// Python's name of the value's type, as used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
        }
    }

    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Python's truth value (`bool(x)`).
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(v) | Value::Tuple(v) => !v.is_empty(),
        }
    }

    /// Python's `repr()`: strings quoted and escaped, containers with their items' `repr()`.
    pub fn repr(&self) -> String {
        let mut out = String::new();
        write_repr(&mut out, self, false);
        out
    }

    /// Python's `ascii()`: like [`repr`](Self::repr) with every non-ASCII character escaped.
    pub fn ascii(&self) -> String {
        let mut out = String::new();
        write_repr(&mut out, self, true);
        out
    }

    /// The measure checked against [`MAX_VALUE_LEN`](super::MAX_VALUE_LEN): the byte length of
    /// a string; for a list or tuple, its item count plus the weights of its items.
    pub fn weight(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::List(v) | Value::Tuple(v) => v.iter().fold(0usize, |acc, item| {
                acc.saturating_add(1).saturating_add(item.weight())
            }),
            _ => 0,
        }
    }

    /// The value as an integer, if it is an `int` or a `bool` (Python's `__index__`).
    pub(crate) fn as_index(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

/// `str()`: strings as they are, everything else as its `repr()`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            other => f.write_str(&other.repr()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i.into())
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::None, Into::into)
    }
}

fn write_repr(out: &mut String, v: &Value, ascii: bool) {
    match v {
        Value::None => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&float_repr(*f)),
        Value::Str(s) => write_str_repr(out, s, ascii),
        Value::List(items) => {
            out.push('[');
            write_items(out, items, ascii);
            out.push(']');
        }
        Value::Tuple(items) => {
            out.push('(');
            write_items(out, items, ascii);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
    }
}

fn write_items(out: &mut String, items: &[Value], ascii: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(out, item, ascii);
    }
}

/// Python's string repr: single quotes unless the text has `'` and no `"`.
fn write_str_repr(out: &mut String, s: &str, ascii: bool) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || (ascii && !c.is_ascii()) => {
                let n = u32::from(c);
                let escaped = match n {
                    0..=0xff => format!("\\x{n:02x}"),
                    0x100..=0xffff => format!("\\u{n:04x}"),
                    _ => format!("\\U{n:08x}"),
                };
                out.push_str(&escaped);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `==`.
pub(crate) fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        _ => num_cmp(a, b) == Some(Some(Ordering::Equal)),
    }
}

/// Compares two numbers (`bool`, `int`, `float`) exactly, as Python does: `None` when either
/// is not a number, `Some(None)` when unordered (NaN).
fn num_cmp(a: &Value, b: &Value) -> Option<Option<Ordering>> {
    let num = |v: &Value| match v {
        Value::Float(f) => Some(Err(*f)),
        other => other.as_index().map(Ok),
    };
    Some(match (num(a)?, num(b)?) {
        (Ok(x), Ok(y)) => Some(x.cmp(&y)),
        (Err(x), Err(y)) => x.partial_cmp(&y),
        (Ok(x), Err(y)) => int_float_cmp(x, y),
        (Err(x), Ok(y)) => int_float_cmp(y, x).map(Ordering::reverse),
    })
}

/// Exact comparison of an integer with a float (no rounding of the integer).
fn int_float_cmp(i: i64, f: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // |whole| < 2^63, so the conversion is exact.
    let ordering = i.cmp(&(whole as i64)).then_with(|| {
        let fraction = f - whole;
        if fraction > 0.0 {
            Ordering::Less
        } else if fraction < 0.0 {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    Some(ordering)
}

/// Python's ordering for `<`, `<=`, `>`, `>=`, `min` and `max`: numbers with numbers, strings
/// with strings, lists with lists and tuples with tuples (lexicographically). `Ok(None)` means
/// unordered (NaN); `op` names the operator in the `TypeError`.
pub(crate) fn py_cmp(a: &Value, b: &Value, op: &str) -> Result<Option<Ordering>, ExprErrorKind> {
    if let Some(ordering) = num_cmp(a, b) {
        return Ok(ordering);
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(Some(x.cmp(y))),
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            match x.iter().zip(y).find(|(p, q)| !py_eq(p, q)) {
                Some((p, q)) => py_cmp(p, q, op),
                None => Ok(Some(x.len().cmp(&y.len()))),
            }
        }
        _ => Err(type_err(format!(
            "'{op}' not supported between instances of '{}' and '{}'",
            a.type_name(),
            b.type_name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn str_and_repr_follow_python() {
        assert_eq!(Value::None.to_string(), "None");
        assert_eq!(Value::Bool(true).to_string(), "True");
        assert_eq!(Value::Int(-5).to_string(), "-5");
        assert_eq!(Value::Float(1.0).to_string(), "1.0");
        assert_eq!(s("a'b").to_string(), "a'b");
        assert_eq!(s("a'b").repr(), "\"a'b\"");
        assert_eq!(s("a'b\"").repr(), "'a\\'b\"'");
        assert_eq!(s("x\ny\\\u{1}").repr(), "'x\\ny\\\\\\x01'");
        assert_eq!(s("é").repr(), "'é'");
        assert_eq!(s("é\u{1F600}").ascii(), "'\\xe9\\U0001f600'");
        let list = Value::List(vec![Value::Int(1), s("a"), Value::None]);
        assert_eq!(list.to_string(), "[1, 'a', None]");
        assert_eq!(Value::Tuple(vec![Value::Int(1)]).to_string(), "(1,)");
        assert_eq!(Value::Tuple(vec![]).to_string(), "()");
    }

    #[test]
    fn equality_and_ordering_are_pythonic() {
        assert!(py_eq(&Value::Int(1), &Value::Float(1.0)));
        assert!(py_eq(&Value::Bool(true), &Value::Int(1)));
        assert!(!py_eq(&Value::Int(1), &s("1")));
        assert!(!py_eq(&Value::List(vec![]), &Value::Tuple(vec![])));
        assert!(!py_eq(&Value::Float(f64::NAN), &Value::Float(f64::NAN)));
        // 2**53 + 1 is not equal to the float 2**53.
        assert!(!py_eq(
            &Value::Int((1 << 53) + 1),
            &Value::Float(9007199254740992.0)
        ));
        assert_eq!(
            py_cmp(&Value::Int(i64::MAX), &Value::Float(9.3e18), "<"),
            Ok(Some(Ordering::Less))
        );
        assert_eq!(
            py_cmp(&Value::Int(2), &Value::Float(2.5), "<"),
            Ok(Some(Ordering::Less))
        );
        assert_eq!(
            py_cmp(&Value::Float(-2.5), &Value::Int(-2), "<"),
            Ok(Some(Ordering::Less))
        );
        assert_eq!(py_cmp(&s("b"), &s("ab"), "<"), Ok(Some(Ordering::Greater)));
        let l = |v: Vec<i64>| Value::List(v.into_iter().map(Value::Int).collect());
        assert_eq!(
            py_cmp(&l(vec![1, 2]), &l(vec![1, 2, 0]), "<"),
            Ok(Some(Ordering::Less))
        );
        assert_eq!(
            py_cmp(&l(vec![1, 3]), &l(vec![1, 2, 0]), "<"),
            Ok(Some(Ordering::Greater))
        );
        let err = py_cmp(&s("a"), &Value::Int(1), "<").unwrap_err();
        assert_eq!(
            err.to_string(),
            "'<' not supported between instances of 'str' and 'int'"
        );
    }

    #[test]
    fn truthiness_and_weight() {
        assert!(!Value::None.truthy());
        assert!(!s("").truthy());
        assert!(s("x").truthy());
        assert!(!Value::Float(0.0).truthy());
        assert!(Value::List(vec![Value::None]).truthy());
        assert_eq!(Value::List(vec![s("ab"), Value::Int(3)]).weight(), 4);
        assert_eq!(Value::Int(3).weight(), 0);
    }

    #[test]
    fn conversions() {
        assert_eq!(Value::from(Some("x")), s("x"));
        assert_eq!(Value::from(None::<i64>), Value::None);
        assert_eq!(Value::from(3i32), Value::Int(3));
        assert_eq!(s("x").as_str(), Some("x"));
        assert_eq!(Value::Int(1).type_name(), "int");
    }
}
