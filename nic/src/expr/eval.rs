//! The evaluator of checked trees: operators, indexing and slicing, with the step budget.

use std::cmp::Ordering;

use super::builtins::{Builtin, Method, call_builtin, call_method};
use super::check::{BinOp, CmpOp, Kind, Node, UnaryOp};
use super::error::{ExprErrorKind, Located, type_err, value_err};
use super::format::percent_format;
use super::value::{Value, py_cmp, py_eq};
use super::{Env, MAX_STEPS, MAX_VALUE_LEN, check_len};

/// Attaches a source offset to a bare error kind.
trait At<T> {
    fn at(self, at: u32) -> Result<T, Located>;
}

impl<T> At<T> for Result<T, ExprErrorKind> {
    fn at(self, at: u32) -> Result<T, Located> {
        self.map_err(|kind| Located { at, kind })
    }
}

/// Evaluates one expression over one environment, counting steps: one per node, plus the
/// weight (see [`Value::weight`]) of every value read from the environment or produced.
pub(crate) struct Evaluator<'e> {
    env: &'e dyn Env,
    steps: u64,
}

impl<'e> Evaluator<'e> {
    pub(crate) fn new(env: &'e dyn Env) -> Self {
        Evaluator { env, steps: 0 }
    }

    fn charge(&mut self, n: usize) -> Result<(), ExprErrorKind> {
        self.steps = self.steps.saturating_add(n as u64);
        if self.steps > MAX_STEPS {
            return Err(ExprErrorKind::StepLimit { max: MAX_STEPS });
        }
        Ok(())
    }

    /// Checks a new value against [`MAX_VALUE_LEN`] and charges its weight.
    fn produced(&mut self, v: Value) -> Result<Value, ExprErrorKind> {
        let weight = v.weight();
        check_len(weight)?;
        self.charge(weight)?;
        Ok(v)
    }

    fn all(&mut self, nodes: &[Node]) -> Result<Vec<Value>, Located> {
        // A plain loop: iterator adapters would add several frames per nesting level in
        // debug builds.
        let mut values = Vec::with_capacity(nodes.len());
        for n in nodes {
            values.push(self.eval(n)?);
        }
        Ok(values)
    }

    /// Evaluates `node`. Each kind of node has its own method, so that this recursive
    /// dispatcher's stack frame stays small even in debug builds.
    pub(crate) fn eval(&mut self, node: &Node) -> Result<Value, Located> {
        let at = node.at;
        self.charge(1).at(at)?;
        match &node.kind {
            Kind::Const(v) => self.produced(v.clone()).at(at),
            Kind::Name(name) => self.name(name, at),
            Kind::List(items) => self.display(items, Value::List, at),
            Kind::Tuple(items) => self.display(items, Value::Tuple, at),
            Kind::Unary(op, operand) => self.unary(*op, operand, at),
            Kind::Binary(first, rest) => self.binary(first, rest),
            Kind::And(values) => self.boolean(values, false),
            Kind::Or(values) => self.boolean(values, true),
            Kind::Compare(first, rest) => self.compare(first, rest),
            Kind::Cond(branches, orelse) => self.conditional(branches, orelse),
            Kind::Index(value, index) => self.index(value, index, at),
            Kind::Slice(value, bounds) => self.slice(value, bounds, at),
            Kind::Call(builtin, args) => self.call(*builtin, args, at),
            Kind::Method(receiver, method, args) => self.method(receiver, *method, args, at),
        }
    }

    fn name(&mut self, name: &str, at: u32) -> Result<Value, Located> {
        let v = self.env.lookup(name);
        let v = v
            .ok_or_else(|| ExprErrorKind::UndefinedName(name.to_owned()))
            .at(at)?;
        self.charge(v.weight()).at(at)?;
        Ok(v)
    }

    fn display(
        &mut self,
        items: &[Node],
        make: fn(Vec<Value>) -> Value,
        at: u32,
    ) -> Result<Value, Located> {
        let items = self.all(items)?;
        self.produced(make(items)).at(at)
    }

    fn unary(&mut self, op: UnaryOp, operand: &Node, at: u32) -> Result<Value, Located> {
        let v = self.eval(operand)?;
        unary(op, v).at(at)
    }

    fn binary(&mut self, first: &Node, rest: &[(BinOp, u32, Node)]) -> Result<Value, Located> {
        let mut acc = self.eval(first)?;
        for (op, at, right) in rest {
            let right = self.eval(right)?;
            acc = binary(*op, acc, right)
                .and_then(|v| self.produced(v))
                .at(*at)?;
        }
        Ok(acc)
    }

    /// `and` (stops at the first falsy value) or `or` (at the first truthy one).
    fn boolean(&mut self, values: &[Node], stop_when: bool) -> Result<Value, Located> {
        let mut last = Value::None;
        for v in values {
            last = self.eval(v)?;
            if last.truthy() == stop_when {
                break;
            }
        }
        Ok(last)
    }

    fn compare(&mut self, first: &Node, rest: &[(CmpOp, u32, Node)]) -> Result<Value, Located> {
        let mut left = self.eval(first)?;
        for (op, at, right) in rest {
            let right = self.eval(right)?;
            self.charge(left.weight().min(right.weight())).at(*at)?;
            if !compare(*op, &left, &right).at(*at)? {
                return Ok(Value::Bool(false));
            }
            left = right;
        }
        Ok(Value::Bool(true))
    }

    fn conditional(&mut self, branches: &[(Node, Node)], orelse: &Node) -> Result<Value, Located> {
        for (test, body) in branches {
            if self.eval(test)?.truthy() {
                return self.eval(body);
            }
        }
        self.eval(orelse)
    }

    fn index(&mut self, value: &Node, index: &Node, at: u32) -> Result<Value, Located> {
        let v = self.eval(value)?;
        let i = self.eval(index)?;
        self.charge(v.weight()).at(at)?;
        let item = subscript(&v, &i).at(at)?;
        self.produced(item).at(at)
    }

    fn slice(
        &mut self,
        value: &Node,
        bounds: &[Option<Box<Node>>; 3],
        at: u32,
    ) -> Result<Value, Located> {
        let v = self.eval(value)?;
        let mut values = [None, None, None];
        for (value, bound) in values.iter_mut().zip(bounds) {
            if let Some(bound) = bound {
                *value = Some(self.eval(bound)?);
            }
        }
        self.charge(v.weight()).at(at)?;
        let part = slice(&v, &values).at(at)?;
        self.produced(part).at(at)
    }

    fn call(&mut self, builtin: Builtin, args: &[Node], at: u32) -> Result<Value, Located> {
        let args = self.all(args)?;
        let result = call_builtin(builtin, &args).at(at)?;
        self.produced(result).at(at)
    }

    fn method(
        &mut self,
        receiver: &Node,
        method: Method,
        args: &[Node],
        at: u32,
    ) -> Result<Value, Located> {
        let receiver = self.eval(receiver)?;
        let args = self.all(args)?;
        let result = match &receiver {
            Value::Str(s) => call_method(s, method, &args),
            other => Err(no_attribute(other, method)),
        };
        let result = result.at(at)?;
        self.produced(result).at(at)
    }
}

fn no_attribute(v: &Value, method: Method) -> ExprErrorKind {
    let message = format!(
        "'{}' object has no attribute '{}'",
        v.type_name(),
        method.name()
    );
    ExprErrorKind::Attribute(message)
}

/// Python's conversion of a float to an int (truncation), refusing NaN and out-of-range values.
pub(crate) fn float_to_int(f: f64) -> Result<i64, ExprErrorKind> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return Err(value_err("cannot convert float NaN to integer"));
    }
    let t = f.trunc();
    if !(-TWO_63..TWO_63).contains(&t) {
        return Err(ExprErrorKind::Overflow);
    }
    Ok(t as i64)
}

fn unary(op: UnaryOp, v: Value) -> Result<Value, ExprErrorKind> {
    let bad = |sign: &str, v: &Value| {
        type_err(format!(
            "bad operand type for unary {sign}: '{}'",
            v.type_name()
        ))
    };
    Ok(match (op, v) {
        (UnaryOp::Not, v) => Value::Bool(!v.truthy()),
        (UnaryOp::Neg, Value::Float(f)) => Value::Float(-f),
        (UnaryOp::Pos, Value::Float(f)) => Value::Float(f),
        (op, v) => match (op, v.as_index()) {
            (UnaryOp::Neg, Some(i)) => Value::Int(i.checked_neg().ok_or(ExprErrorKind::Overflow)?),
            (UnaryOp::Pos, Some(i)) => Value::Int(i),
            (UnaryOp::Neg, None) => return Err(bad("-", &v)),
            _ => return Err(bad("+", &v)),
        },
    })
}

fn unsupported(op: BinOp, a: &Value, b: &Value) -> ExprErrorKind {
    type_err(format!(
        "unsupported operand type(s) for {}: '{}' and '{}'",
        op.symbol(),
        a.type_name(),
        b.type_name()
    ))
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, ExprErrorKind> {
    use Value::{List, Str, Tuple};
    match (op, a, b) {
        (BinOp::Add, Str(x), Str(y)) => {
            check_len(x.len() + y.len())?;
            Ok(Str(x + &y))
        }
        (BinOp::Add, List(x), List(y)) => Ok(List(concat(x, y)?)),
        (BinOp::Add, Tuple(x), Tuple(y)) => Ok(Tuple(concat(x, y)?)),
        (BinOp::Add, a @ (Str(_) | List(_) | Tuple(_)), b) => Err(type_err(format!(
            "can only concatenate {0} (not \"{1}\") to {0}",
            a.type_name(),
            b.type_name()
        ))),
        (BinOp::Mul, seq @ (Str(_) | List(_) | Tuple(_)), n)
        | (BinOp::Mul, n, seq @ (Str(_) | List(_) | Tuple(_))) => match n.as_index() {
            Some(n) => repeat(seq, n),
            None => Err(type_err(format!(
                "can't multiply sequence by non-int of type '{}'",
                n.type_name()
            ))),
        },
        (BinOp::Mod, Str(fmt), args) => percent_format(&fmt, &args).map(Str),
        (op, a, b) => arithmetic(op, &a, &b),
    }
}

fn concat(mut x: Vec<Value>, y: Vec<Value>) -> Result<Vec<Value>, ExprErrorKind> {
    check_len(x.len() + y.len())?;
    x.extend(y);
    Ok(x)
}

/// `seq * n`, refused before allocating when the result would exceed [`MAX_VALUE_LEN`].
fn repeat(seq: Value, n: i64) -> Result<Value, ExprErrorKind> {
    let n = usize::try_from(n).unwrap_or(0);
    let weight = seq.weight();
    if weight == 0 || n == 0 {
        return Ok(match seq {
            Value::Str(_) => Value::Str(String::new()),
            Value::Tuple(_) => Value::Tuple(Vec::new()),
            _ => Value::List(Vec::new()),
        });
    }
    let total = weight
        .checked_mul(n)
        .ok_or(ExprErrorKind::TooLarge { max: MAX_VALUE_LEN })?;
    check_len(total)?;
    Ok(match seq {
        Value::Str(s) => Value::Str(s.repeat(n)),
        Value::Tuple(v) => Value::Tuple(repeat_items(&v, n)),
        Value::List(v) => Value::List(repeat_items(&v, n)),
        other => other,
    })
}

fn repeat_items(items: &[Value], n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(items.len() * n);
    for _ in 0..n {
        out.extend_from_slice(items);
    }
    out
}

enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(v: &Value) -> Option<Num> {
        match v {
            Value::Float(f) => Some(Num::Float(*f)),
            v => v.as_index().map(Num::Int),
        }
    }

    fn float(&self) -> f64 {
        match *self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

fn arithmetic(op: BinOp, a: &Value, b: &Value) -> Result<Value, ExprErrorKind> {
    let (Some(x), Some(y)) = (Num::of(a), Num::of(b)) else {
        return Err(unsupported(op, a, b));
    };
    match (x, y) {
        (Num::Int(x), Num::Int(y)) => int_arithmetic(op, x, y),
        (x, y) => float_arithmetic(op, x.float(), y.float()).map(Value::Float),
    }
}

fn int_arithmetic(op: BinOp, x: i64, y: i64) -> Result<Value, ExprErrorKind> {
    use ExprErrorKind::{Overflow, ZeroDivision};
    if y == 0 && matches!(op, BinOp::Div | BinOp::FloorDiv | BinOp::Mod) {
        return Err(ZeroDivision);
    }
    let n = match op {
        BinOp::Add => x.checked_add(y),
        BinOp::Sub => x.checked_sub(y),
        BinOp::Mul => x.checked_mul(y),
        BinOp::Div => return Ok(Value::Float(x as f64 / y as f64)),
        BinOp::FloorDiv => x.checked_div(y).map(|q| {
            if x % y != 0 && (x < 0) != (y < 0) {
                q - 1
            } else {
                q
            }
        }),
        BinOp::Mod => Some(match x.checked_rem(y) {
            None => 0, // i64::MIN % -1
            Some(r) if r != 0 && (r < 0) != (y < 0) => r + y,
            Some(r) => r,
        }),
        BinOp::Pow if y < 0 => {
            if x == 0 {
                return Err(ZeroDivision);
            }
            return float_arithmetic(op, x as f64, y as f64).map(Value::Float);
        }
        BinOp::Pow => match x {
            0 => Some(i64::from(y == 0)),
            1 => Some(1),
            -1 => Some(if y % 2 == 0 { 1 } else { -1 }),
            // |x| >= 2 overflows for any exponent above 63, so a huge one fails at once.
            _ => u32::try_from(y).ok().and_then(|e| x.checked_pow(e)),
        },
    };
    n.map(Value::Int).ok_or(Overflow)
}

fn float_arithmetic(op: BinOp, x: f64, y: f64) -> Result<f64, ExprErrorKind> {
    use ExprErrorKind::{Overflow, ZeroDivision};
    Ok(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div if y == 0.0 => return Err(ZeroDivision),
        BinOp::Div => x / y,
        BinOp::FloorDiv => float_divmod(x, y)?.0,
        BinOp::Mod => float_divmod(x, y)?.1,
        BinOp::Pow => {
            if x == 0.0 && y < 0.0 {
                return Err(ZeroDivision);
            }
            if x < 0.0 && y.is_finite() && y.fract() != 0.0 {
                return Err(value_err(
                    "negative number cannot be raised to a fractional power",
                ));
            }
            let r = x.powf(y);
            if r.is_infinite() && x.is_finite() && y.is_finite() {
                return Err(Overflow);
            }
            r
        }
    })
}

/// Python's float `divmod`: the floor quotient and a remainder with the divisor's sign.
fn float_divmod(x: f64, y: f64) -> Result<(f64, f64), ExprErrorKind> {
    if y == 0.0 {
        return Err(ExprErrorKind::ZeroDivision);
    }
    let mut rem = x % y;
    let mut div = (x - rem) / y;
    if rem != 0.0 {
        if (y < 0.0) != (rem < 0.0) {
            rem += y;
            div -= 1.0;
        }
    } else {
        rem = 0.0f64.copysign(y);
    }
    let floor = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 { f + 1.0 } else { f }
    } else {
        0.0f64.copysign(x / y)
    };
    Ok((floor, rem))
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> Result<bool, ExprErrorKind> {
    let ordered = |symbol: &str, accept: &[Ordering]| -> Result<bool, ExprErrorKind> {
        Ok(py_cmp(a, b, symbol)?.is_some_and(|o| accept.contains(&o)))
    };
    match op {
        CmpOp::Eq => Ok(py_eq(a, b)),
        CmpOp::NotEq => Ok(!py_eq(a, b)),
        CmpOp::Lt => ordered("<", &[Ordering::Less]),
        CmpOp::LtE => ordered("<=", &[Ordering::Less, Ordering::Equal]),
        CmpOp::Gt => ordered(">", &[Ordering::Greater]),
        CmpOp::GtE => ordered(">=", &[Ordering::Greater, Ordering::Equal]),
        CmpOp::In => contains(b, a),
        CmpOp::NotIn => contains(b, a).map(|found| !found),
        // The checker lets `is` compare only with None.
        CmpOp::Is => Ok(matches!((a, b), (Value::None, Value::None))),
        CmpOp::IsNot => Ok(!matches!((a, b), (Value::None, Value::None))),
    }
}

fn contains(container: &Value, item: &Value) -> Result<bool, ExprErrorKind> {
    match (container, item) {
        (Value::Str(haystack), Value::Str(needle)) => Ok(haystack.contains(needle.as_str())),
        (Value::Str(_), item) => Err(type_err(format!(
            "'in <string>' requires string as left operand, not {}",
            item.type_name()
        ))),
        (Value::List(items) | Value::Tuple(items), item) => {
            Ok(items.iter().any(|x| py_eq(x, item)))
        }
        (other, _) => Err(type_err(format!(
            "argument of type '{}' is not iterable",
            other.type_name()
        ))),
    }
}

/// Python's index normalisation: negative indices count from the end.
fn normalize(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let j = if i < 0 { i.checked_add(len)? } else { i };
    (0..len).contains(&j).then_some(j as usize)
}

fn not_subscriptable(v: &Value) -> ExprErrorKind {
    type_err(format!("'{}' object is not subscriptable", v.type_name()))
}

fn subscript(v: &Value, index: &Value) -> Result<Value, ExprErrorKind> {
    match v {
        Value::Str(s) => {
            let i = index.as_index().ok_or_else(|| {
                type_err(format!(
                    "string indices must be integers, not '{}'",
                    index.type_name()
                ))
            })?;
            let c = normalize(i, s.chars().count())
                .and_then(|k| s.chars().nth(k))
                .ok_or_else(|| ExprErrorKind::Index("string index out of range".into()))?;
            Ok(Value::Str(c.to_string()))
        }
        Value::List(items) | Value::Tuple(items) => {
            let name = v.type_name();
            let i = index.as_index().ok_or_else(|| {
                type_err(format!(
                    "{name} indices must be integers or slices, not {}",
                    index.type_name()
                ))
            })?;
            normalize(i, items.len())
                .map(|k| items[k].clone())
                .ok_or_else(|| ExprErrorKind::Index(format!("{name} index out of range")))
        }
        other => Err(not_subscriptable(other)),
    }
}

/// The indices `v[lower:upper:step]` selects from a sequence of `len` items (Python's
/// `slice.indices`).
fn slice_indices(len: usize, bounds: &[Option<Value>; 3]) -> Result<Vec<usize>, ExprErrorKind> {
    let mut ints = [None; 3];
    for (int, bound) in ints.iter_mut().zip(bounds) {
        *int = match bound {
            None | Some(Value::None) => None,
            Some(v) => Some(v.as_index().ok_or_else(|| {
                type_err("slice indices must be integers or None or have an __index__ method")
            })?),
        };
    }
    let step = ints[2].unwrap_or(1);
    if step == 0 {
        return Err(value_err("slice step cannot be zero"));
    }
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let adjust = |bound: Option<i64>, default: i64| match bound {
        None => default,
        Some(i) if i < 0 => {
            let i = i + len;
            if i >= 0 {
                i
            } else if step < 0 {
                -1
            } else {
                0
            }
        }
        Some(i) if i >= len => {
            if step < 0 {
                len - 1
            } else {
                len
            }
        }
        Some(i) => i,
    };
    let (start, stop) = if step < 0 {
        (adjust(ints[0], len - 1), adjust(ints[1], -1))
    } else {
        (adjust(ints[0], 0), adjust(ints[1], len))
    };
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(i as usize);
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(out)
}

fn slice(v: &Value, bounds: &[Option<Value>; 3]) -> Result<Value, ExprErrorKind> {
    Ok(match v {
        Value::Str(s) => {
            let chars: Vec<char> = s.chars().collect();
            Value::Str(
                slice_indices(chars.len(), bounds)?
                    .into_iter()
                    .map(|k| chars[k])
                    .collect(),
            )
        }
        Value::List(items) => Value::List(
            slice_indices(items.len(), bounds)?
                .into_iter()
                .map(|k| items[k].clone())
                .collect(),
        ),
        Value::Tuple(items) => Value::Tuple(
            slice_indices(items.len(), bounds)?
                .into_iter()
                .map(|k| items[k].clone())
                .collect(),
        ),
        other => return Err(not_subscriptable(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i64]) -> Value {
        Value::List(v.iter().map(|&i| Value::Int(i)).collect())
    }

    #[test]
    fn integer_arithmetic_follows_python() {
        let op = |op, x, y| int_arithmetic(op, x, y);
        assert_eq!(op(BinOp::FloorDiv, 7, 2), Ok(Value::Int(3)));
        assert_eq!(op(BinOp::FloorDiv, -7, 2), Ok(Value::Int(-4)));
        assert_eq!(op(BinOp::FloorDiv, 7, -2), Ok(Value::Int(-4)));
        assert_eq!(op(BinOp::Mod, -7, 2), Ok(Value::Int(1)));
        assert_eq!(op(BinOp::Mod, 7, -2), Ok(Value::Int(-1)));
        assert_eq!(op(BinOp::Mod, i64::MIN, -1), Ok(Value::Int(0)));
        assert_eq!(
            op(BinOp::FloorDiv, i64::MIN, -1),
            Err(ExprErrorKind::Overflow)
        );
        assert_eq!(op(BinOp::Mod, 1, 0), Err(ExprErrorKind::ZeroDivision));
        assert_eq!(op(BinOp::Div, 1, 2), Ok(Value::Float(0.5)));
        assert_eq!(op(BinOp::Pow, 2, 10), Ok(Value::Int(1024)));
        assert_eq!(op(BinOp::Pow, 2, -1), Ok(Value::Float(0.5)));
        assert_eq!(op(BinOp::Pow, 0, -1), Err(ExprErrorKind::ZeroDivision));
        assert_eq!(op(BinOp::Pow, -1, i64::MAX), Ok(Value::Int(-1)));
        assert_eq!(
            op(BinOp::Pow, 10, 10_000_000_000),
            Err(ExprErrorKind::Overflow)
        );
        assert_eq!(op(BinOp::Mul, i64::MAX, 2), Err(ExprErrorKind::Overflow));
    }

    #[test]
    fn float_arithmetic_follows_python() {
        assert_eq!(float_divmod(7.5, 2.0), Ok((3.0, 1.5)));
        assert_eq!(float_divmod(-7.5, 2.0), Ok((-4.0, 0.5)));
        assert_eq!(float_divmod(7.5, -2.0), Ok((-4.0, -0.5)));
        assert_eq!(
            float_arithmetic(BinOp::Pow, 10.0, 400.0),
            Err(ExprErrorKind::Overflow)
        );
        assert_eq!(
            float_arithmetic(BinOp::Div, 1.0, 0.0),
            Err(ExprErrorKind::ZeroDivision)
        );
        assert!(float_arithmetic(BinOp::Pow, -8.0, 0.5).is_err());
        assert_eq!(float_to_int(-2.9), Ok(-2));
        assert_eq!(float_to_int(f64::INFINITY), Err(ExprErrorKind::Overflow));
        assert_eq!(float_to_int(9.3e18), Err(ExprErrorKind::Overflow));
    }

    #[test]
    fn slicing_follows_python() {
        let v = ints(&[0, 1, 2, 3, 4]);
        let s = |lo: Option<i64>, hi: Option<i64>, st: Option<i64>| {
            slice(
                &v,
                &[lo.map(Value::Int), hi.map(Value::Int), st.map(Value::Int)],
            )
        };
        assert_eq!(s(Some(1), Some(3), None), Ok(ints(&[1, 2])));
        assert_eq!(s(None, None, Some(-1)), Ok(ints(&[4, 3, 2, 1, 0])));
        assert_eq!(s(Some(-2), None, None), Ok(ints(&[3, 4])));
        assert_eq!(s(None, None, Some(2)), Ok(ints(&[0, 2, 4])));
        assert_eq!(s(Some(3), Some(0), Some(-2)), Ok(ints(&[3, 1])));
        assert_eq!(s(Some(-100), Some(100), None), Ok(v.clone()));
        assert_eq!(
            s(Some(i64::MIN), Some(i64::MAX), Some(i64::MAX)),
            Ok(ints(&[0]))
        );
        assert_eq!(
            s(Some(i64::MAX), Some(i64::MIN), Some(i64::MIN)),
            Ok(ints(&[4]))
        );
        assert!(s(None, None, Some(0)).is_err());
        let text = Value::from("héllo");
        assert_eq!(
            slice(&text, &[None, None, Some(Value::Int(-1))]),
            Ok("olléh".into())
        );
    }

    #[test]
    fn indexing_follows_python() {
        let v = ints(&[10, 20]);
        assert_eq!(subscript(&v, &Value::Int(-1)), Ok(Value::Int(20)));
        assert_eq!(subscript(&v, &Value::Bool(true)), Ok(Value::Int(20)));
        assert_eq!(
            subscript(&v, &Value::Int(2)).unwrap_err().to_string(),
            "list index out of range"
        );
        assert_eq!(
            subscript(&v, &Value::from("a")).unwrap_err().to_string(),
            "list indices must be integers or slices, not str"
        );
        assert_eq!(
            subscript(&Value::from("héllo"), &Value::Int(1)),
            Ok("é".into())
        );
        assert_eq!(
            subscript(&Value::Int(1), &Value::Int(0))
                .unwrap_err()
                .to_string(),
            "'int' object is not subscriptable"
        );
        assert_eq!(normalize(i64::MIN, 3), None);
    }

    #[test]
    fn repetition_checks_the_size_first() {
        assert_eq!(repeat(Value::from("ab"), 3), Ok("ababab".into()));
        assert_eq!(repeat(Value::from("ab"), -3), Ok("".into()));
        assert_eq!(repeat(Value::from(""), i64::MAX), Ok("".into()));
        assert_eq!(repeat(ints(&[]), i64::MAX), Ok(ints(&[])));
        assert_eq!(
            repeat(Value::from("a"), i64::MAX),
            Err(ExprErrorKind::TooLarge { max: MAX_VALUE_LEN })
        );
        assert_eq!(
            repeat(Value::List(vec![Value::None]), 1_000_000),
            Err(ExprErrorKind::TooLarge { max: MAX_VALUE_LEN })
        );
    }
}
