//! Safe evaluation of subscriber reference expressions.
//!
//! An aggregate service (Juniper SRC, "Using Python Expressions in a Subscriber Reference
//! Expression") names the subscriber session it acts on with a Python expression over the
//! session's fields and the service's substitutions, for example
//! `"ip=" + user_IpAddress` or `"interfaceName=%s;vr=%s" % (interfaceName, virtualRouterName)`.
//! This module parses such an expression with the Ruff Python parser, checks it against a
//! small, side-effect-free subset of Python when it is written ([`Expression::parse`]), and
//! evaluates it over an [`Env`] with hard bounds on time and memory
//! ([`Expression::evaluate`]).
//!
//! # The subset
//!
//! * **Literals**: strings (quotes of any kind, raw, implicit concatenation `'a' 'b'`),
//!   integers (must fit in `i64`), floats, `True`, `False`, `None`; lists `[a, b]` and
//!   tuples `(a, b)`.
//! * **Names** are read from the environment; a name it lacks is
//!   `name 'x' is not defined`. Function names in call position (`str(x)`) always mean the
//!   builtins below and are not looked up; anywhere else `str` is an ordinary name.
//! * **Operators**: `+` (numbers, and str/list/tuple concatenation), `-`, `*` (numbers, and
//!   str/list/tuple repetition by an int), `/` (always float), `//` and `%` (floor semantics as
//!   in Python), `**`, unary `-` `+` `not`, `and`/`or` (short-circuit, returning an operand),
//!   comparisons `== != < <= > >=` (chained as in Python), `in`, `not in`, and `is`/`is not`
//!   only against `None`; conditional expressions `a if c else b`.
//! * **printf formatting** `str % value`: conversions `s r a d i u x X o e E f F g G c %`,
//!   flags `- + space # 0`, widths and precisions (also `*`); a tuple gives the arguments,
//!   any other value is the only argument.
//! * **Subscripts**: indexing with negative indices and slicing with a step, of str (by
//!   character), list and tuple.
//! * **Calls** with positional arguments only, of the builtins `str`, `int` (of str with an
//!   optional base 0/2–36, of float, bool), `float`, `len`, `bool`, `min`, `max`, `abs`, and of
//!   these methods on str values: `lower upper strip lstrip rstrip split rsplit replace
//!   startswith endswith join find rfind count zfill ljust rjust center isdigit isalpha
//!   isalnum isspace islower isupper title capitalize partition rpartition`.
//!
//! Everything else is refused by [`Expression::parse`] with its own message and position:
//! lambda, comprehensions and generator expressions, `:=`, `await`, `yield`, starred
//! expressions, dict and set displays, f-strings and t-strings ("f-strings are not
//! supported; use % or +"), bytes, complex numbers, `...`, the bitwise operators
//! `~ & | ^ << >>` and `@`, attribute access other than calling an allowed str method, calls
//! of anything else, keyword arguments and `**` unpacking, wrong argument counts, and every
//! name or attribute starting with `__` (so `__import__`, `().__class__` and the like).
//! A method called on a value that is not a str fails at evaluation
//! (`'int' object has no attribute 'lower'`).
//!
//! # Limits
//!
//! * [`MAX_SOURCE_LEN`] bytes of source, checked before anything else.
//! * Before the parser runs, the parser's own lexer tokenizes the source, and the source is
//!   refused if brackets or runs of prefix operators (`- - x`, `not not x`) nest deeper than
//!   [`MAX_DEPTH`], or if it has more than [`MAX_OPERATORS`] operator, bracket and keyword
//!   tokens. Each level of the parser's AST comes from one such token, and that AST is
//!   dropped recursively, so this is what keeps the stack small for any input (the parser
//!   itself also guards its recursion). The checked tree is at most [`MAX_DEPTH`] levels deep
//!   as well; left-associative operator chains (`a + b + c …`) and `elif`-like conditional
//!   chains are flat in it, so they may be long. The checker and the evaluator recurse once
//!   per level with small frames; the hostile-input test parses and evaluates the deepest
//!   allowed sources in a 256 KiB thread of a debug build (they need about 160 KiB there, far
//!   less in release builds).
//! * Evaluation counts steps against [`MAX_STEPS`]: one per node, plus the weight
//!   ([`Value::weight`]: bytes of a string, items of a list or tuple, nested ones included)
//!   of every value read from the environment or produced, so the work of joins,
//!   replacements, splits, formatting and repetition is counted.
//! * No string or list above [`MAX_VALUE_LEN`] is ever produced; repetition, padding widths,
//!   `zfill`, `replace` and `join` compute the size first and fail before allocating.
//! * Integer arithmetic is checked (`integer overflow`); division and modulo by zero are
//!   `division by zero`.
//!
//! # Deviations from Python
//!
//! * Integers are 64-bit: literals, results and `int()` conversions outside `i64` are errors
//!   (`integer overflow`) rather than big integers; `int / int` divides in floating point.
//! * A negative number raised to a fractional power is an error, not a complex number.
//! * `%` formatting has no mapping keys (`%(name)s`), and `%c` refuses surrogates.
//! * `startswith`, `endswith`, `find`, `rfind` and `count` take no start/end arguments.
//! * Character classes (`isdigit`, `isalpha`, `title`, blanks for `split`/`strip`) follow
//!   Rust's Unicode properties, which match Python's for ASCII and differ slightly beyond;
//!   `repr()` escapes control characters only.
//! * Values from the environment are trusted to be shallow: displaying or comparing a value
//!   recurses into nested lists.

mod builtins;
mod check;
mod error;
mod eval;
mod format;
mod value;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

pub use error::{ExprError, ExprErrorKind, Position};
pub use value::Value;

/// The longest source accepted, in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;
/// The deepest nesting of brackets, of prefix operators, and of the checked tree.
pub const MAX_DEPTH: usize = 64;
/// The most operator, bracket and keyword tokens a source may have.
pub const MAX_OPERATORS: usize = 512;
/// The most evaluation steps (see the module documentation) one evaluation may take.
pub const MAX_STEPS: u64 = 1_000_000;
/// The largest string (in bytes) or list/tuple (items, nested ones included, plus the bytes of
/// their strings) an evaluation may produce.
pub const MAX_VALUE_LEN: usize = 65_536;

/// Refuses a size above [`MAX_VALUE_LEN`].
fn check_len(n: usize) -> Result<(), ExprErrorKind> {
    if n > MAX_VALUE_LEN {
        return Err(ExprErrorKind::TooLarge { max: MAX_VALUE_LEN });
    }
    Ok(())
}

/// Where names are looked up: a session's fields and a service's substitutions.
pub trait Env {
    fn lookup(&self, name: &str) -> Option<Value>;
}

impl<S: BuildHasher> Env for HashMap<String, Value, S> {
    fn lookup(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

impl Env for BTreeMap<String, Value> {
    fn lookup(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

impl<F: Fn(&str) -> Option<Value>> Env for F {
    fn lookup(&self, name: &str) -> Option<Value> {
        self(name)
    }
}

/// A parsed and checked subscriber reference expression.
#[derive(Clone, Debug)]
pub struct Expression {
    source: String,
    root: check::Node,
    names: Vec<String>,
}

impl Expression {
    /// Parses and statically checks `source`: every construct outside the allowed subset is
    /// refused here, so that a catalog refuses a service whose expression is not allowed when
    /// it is written.
    pub fn parse(source: &str) -> Result<Expression, ExprError> {
        let (root, names) = check::parse(source)?;
        Ok(Expression {
            source: source.to_owned(),
            root,
            names,
        })
    }

    /// The source text, as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The free names the expression reads (fields and substitution names), sorted and
    /// deduplicated. Builtin functions in call position are not among them.
    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Evaluates the expression over `env`.
    pub fn evaluate(&self, env: &dyn Env) -> Result<Value, ExprError> {
        eval::Evaluator::new(env)
            .eval(&self.root)
            .map_err(|e| e.into_error(&self.source))
    }

    /// Evaluates the expression and converts the result as Python's `str()` would.
    pub fn evaluate_to_string(&self, env: &dyn Env) -> Result<String, ExprError> {
        Ok(match self.evaluate(env)? {
            Value::Str(s) => s,
            other => other.to_string(),
        })
    }
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Expression {}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Expression {
    type Err = ExprError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Expression::parse(s)
    }
}

/// Python's hard keywords, which cannot name a parameter.
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Whether `name` can name a field or substitution that expressions read: an ASCII
/// identifier (a letter or `_`, then letters, digits and `_`) that is not one of Python's hard
/// keywords (`True`, `None`, `if`, …) and does not start with `__` (such names are refused in
/// expressions). The soft keywords `match`, `case`, `type` and `_` are valid names.
pub fn is_valid_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
        && !KEYWORDS.contains(&name)
}

/// A fixed environment with typical session fields, for fuzzing and tests.
fn sample_env() -> BTreeMap<String, Value> {
    let strings = [
        ("user_IpAddress", "192.0.2.10"),
        ("loginName", "alice@example.com"),
        ("loginType", "AUTHINTF"),
        ("interfaceName", "ge-0/0/1.100"),
        ("virtualRouterName", "default"),
        ("nasIp", "192.0.2.1"),
        ("userName", "alice"),
        ("domain", "example.com"),
        ("empty", ""),
    ];
    let mut env: BTreeMap<String, Value> = strings
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    env.insert("vlan".into(), Value::Int(100));
    env.insert("ratio".into(), Value::Float(0.5));
    env.insert("enabled".into(), Value::Bool(true));
    env.insert("nothing".into(), Value::None);
    env.insert(
        "roles".into(),
        Value::List(vec!["gold".into(), "voip".into()]),
    );
    env
}

/// One fuzzing round: reads `data` as UTF-8 (lossily), parses it, and evaluates it over a
/// fixed environment of typical session fields. It never panics; with debug assertions on
/// it checks that every error position lies inside the source. A fuzz target is just
/// `fuzz_target!(|data: &[u8]| sae_nic::expr::fuzz_one(data));`.
pub fn fuzz_one(data: &[u8]) {
    let source = String::from_utf8_lossy(data);
    let check = |e: &ExprError| {
        debug_assert!(
            e.position.is_none_or(|p| p.is_within(&source)),
            "error position outside the source: {e}"
        );
    };
    match Expression::parse(&source) {
        Ok(expr) => {
            if let Err(e) = expr.evaluate(&sample_env()) {
                check(&e);
            }
        }
        Err(e) => check(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eval(src: &str) -> Result<Value, ExprError> {
        Expression::parse(src)?.evaluate(&sample_env())
    }

    /// The result's `repr()`, or the error's message.
    fn show(src: &str) -> String {
        match eval(src) {
            Ok(v) => v.repr(),
            Err(e) => format!("ERR {e}"),
        }
    }

    fn parse_error(src: &str) -> String {
        match Expression::parse(src) {
            Ok(_) => panic!("{src:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn seed_examples() {
        let cases = [
            (r#""ip=" + user_IpAddress"#, "ip=192.0.2.10"),
            (
                r#""interfaceName=%s;vr=%s" % (interfaceName, virtualRouterName)"#,
                "interfaceName=ge-0/0/1.100;vr=default",
            ),
            ("loginName.split('@')[0]", "alice"),
            (
                "'dn=uniqueID=%s,ou=%s,o=users' % (userName, domain)",
                "dn=uniqueID=alice,ou=example.com,o=users",
            ),
            (
                "'interfaceName=%s;router=%s' % (interfaceName, nasIp) if loginType == 'AUTHINTF' else 'loginName=' + loginName",
                "interfaceName=ge-0/0/1.100;router=192.0.2.1",
            ),
            (
                "'ip=' + user_IpAddress if loginType != 'AUTHINTF' else 'loginName=' + loginName",
                "loginName=alice@example.com",
            ),
            ("'vr=%s' % (virtualRouterName or 'default')", "vr=default"),
        ];
        for (src, want) in cases {
            let expr = Expression::parse(src).unwrap();
            assert_eq!(
                expr.evaluate_to_string(&sample_env()).unwrap(),
                want,
                "{src}"
            );
        }
        let expr =
            Expression::parse(r#""interfaceName=%s;vr=%s" % (interfaceName, virtualRouterName)"#)
                .unwrap();
        assert_eq!(expr.names(), ["interfaceName", "virtualRouterName"]);
        let expr = Expression::parse("str(vlan) + loginName.split('@')[0] + str(vlan)").unwrap();
        assert_eq!(expr.names(), ["loginName", "vlan"]);
    }

    #[test]
    fn python_semantics() {
        let cases = [
            ("1 + 2 * 3", "7"),
            ("10 - 2 - 3", "5"),
            ("2 ** 3 ** 2", "512"),
            ("-2 ** 2", "-4"),
            ("2 ** -1", "0.5"),
            ("7 // -2", "-4"),
            ("-7 % 3", "2"),
            ("100 // 7 * 7 + 100 % 7", "100"),
            ("1 / 4", "0.25"),
            ("7.5 // 2", "3.0"),
            ("-7.5 % 2", "0.5"),
            ("True + 1", "2"),
            ("- - 1", "1"),
            ("-vlan", "-100"),
            ("+ratio", "0.5"),
            ("1e3", "1000.0"),
            ("0x1f + 0o7 + 0b1 + 1_000", "1039"),
            ("'a' 'b' \"c\"", "'abc'"),
            ("r'\\d'", "'\\\\d'"),
            ("'ab' * 3", "'ababab'"),
            ("3 * 'ab'", "'ababab'"),
            ("[1] + [2]", "[1, 2]"),
            ("(1,) * 2", "(1, 1)"),
            ("[] * 5", "[]"),
            ("'a' < 'b' < 'c'", "True"),
            ("1 < 2 > 3", "False"),
            ("1 == 1.0 == True", "True"),
            ("[1, 2] == [1, 2]", "True"),
            ("(1, 2) < (1, 3)", "True"),
            ("'x' in 'xyz'", "True"),
            ("2 not in [1, 2]", "False"),
            ("'gold' in roles", "True"),
            ("nothing is None", "True"),
            ("vlan is not None", "True"),
            ("None is nothing", "True"),
            ("0 or 'd'", "'d'"),
            ("'' and 1", "''"),
            ("1 and 2 and 3", "3"),
            ("0 or '' or None", "None"),
            ("not empty", "True"),
            ("1 if enabled else 2", "1"),
            ("'a' if vlan > 200 else 'b' if vlan > 50 else 'c'", "'b'"),
            ("loginName[-3:]", "'com'"),
            ("loginName[::-1][:3]", "'moc'"),
            ("loginName[1:10:3]", "'lex'"),
            ("'abc'[5:]", "''"),
            ("'héllo'[1]", "'é'"),
            ("(1, 2)[1]", "2"),
            ("roles[-1]", "'voip'"),
            ("'%05.1f|%-4d|%x' % (ratio, vlan, 255)", "'000.5|100 |ff'"),
            ("'%s' % None", "'None'"),
            ("'%s' % [1, 'a']", "\"[1, 'a']\""),
            ("'%r' % 'x'", "\"'x'\""),
            ("'%d%%' % 50", "'50%'"),
            ("str(vlan) + 'x'", "'100x'"),
            ("str(roles)", "\"['gold', 'voip']\""),
            ("str((1,))", "'(1,)'"),
            ("str(1.0)", "'1.0'"),
            ("str()", "''"),
            ("int('42') + 1", "43"),
            ("int('ff', 16)", "255"),
            ("int(2.9)", "2"),
            ("float('1.5')", "1.5"),
            ("len(roles) + len('héllo')", "7"),
            ("max(1, 2.5)", "2.5"),
            ("min('b', 'a')", "'a'"),
            ("max(roles)", "'voip'"),
            ("abs(-3)", "3"),
            ("bool(empty)", "False"),
            ("','.join(roles)", "'gold,voip'"),
            ("loginName.upper()", "'ALICE@EXAMPLE.COM'"),
            ("'  x '.strip()", "'x'"),
            ("domain.replace('.', '-')", "'example-com'"),
            ("userName.startswith(('al', 'bo'))", "True"),
            ("'a-b-c'.rsplit('-', 1)", "['a-b', 'c']"),
            ("loginName.partition('@')[2]", "'example.com'"),
            ("str(vlan).zfill(5)", "'00100'"),
            ("interfaceName.split('.')[0].split('/')[-1]", "'1'"),
            ("'é'.upper()", "'É'"),
            ("[][::]", "[]"),
            ("[[1, 2], [3]][0][1]", "2"),
            ("(vlan)", "100"),
            ("(\n  'a' +\n  'b'\n)", "'ab'"),
            ("'a' # a comment", "'a'"),
            ("'x\\u00e9\\n'", "'xé\\n'"),
        ];
        for (src, want) in cases {
            assert_eq!(show(src), want, "{src}");
        }
    }

    #[test]
    fn refused_constructs_name_the_construct_and_its_position() {
        let cases = [
            ("lambda: 1", "1:1: lambda expressions are not allowed"),
            ("[x for x in y]", "1:1: comprehensions are not allowed"),
            ("{x for x in y}", "1:1: comprehensions are not allowed"),
            ("{x: 1 for x in y}", "1:1: comprehensions are not allowed"),
            (
                "(x for x in y)",
                "1:1: generator expressions are not allowed",
            ),
            (
                "(y := 1)",
                "1:2: assignment expressions (:=) are not allowed",
            ),
            ("await x", "1:1: 'await' is not allowed"),
            ("(yield x)", "1:2: 'yield' is not allowed"),
            ("[*x]", "1:2: starred expressions (*x) are not allowed"),
            ("str(*x)", "1:5: starred expressions (*x) are not allowed"),
            ("{'a': 1}", "1:1: dict displays ({...}) are not allowed"),
            ("{1}", "1:1: set displays ({...}) are not allowed"),
            ("f'{x}'", "1:1: f-strings are not supported; use % or +"),
            (
                "'a' + f'{().__class__}'",
                "1:7: f-strings are not supported; use % or +",
            ),
            ("b'x'", "1:1: bytes literals are not supported"),
            ("1j", "1:1: complex numbers are not supported"),
            ("...", "1:1: '...' (Ellipsis) is not supported"),
            ("~x", "1:1: operator '~' is not supported"),
            ("x << 1", "1:3: operator '<<' is not supported"),
            ("x >> 1", "1:3: operator '>>' is not supported"),
            ("x | y", "1:3: operator '|' is not supported"),
            ("x & y", "1:3: operator '&' is not supported"),
            ("x ^ y", "1:3: operator '^' is not supported"),
            ("x @ y", "1:3: operator '@' is not supported"),
            (
                "x is 'a'",
                "1:3: 'is' is only allowed to compare with None; use '=='",
            ),
            (
                "99999999999999999999",
                "1:1: integer literal is too large (integers are 64-bit)",
            ),
            (
                "x.upper",
                "1:3: attribute access is only allowed to call a str method, e.g. name.lower()",
            ),
            (
                "__import__('os')",
                "1:1: names starting with '__' are not allowed: '__import__'",
            ),
            (
                "().__class__.__bases__",
                "1:14: names starting with '__' are not allowed: '__bases__'",
            ),
            (
                "x.__class__()",
                "1:3: names starting with '__' are not allowed: '__class__'",
            ),
            (
                "__builtins__",
                "1:1: names starting with '__' are not allowed: '__builtins__'",
            ),
            (
                "x[1:2, 3]",
                "1:3: slices are only allowed directly inside [...]",
            ),
            (
                "x.format(1)",
                "1:3: 'format' is not an allowed str method; the allowed ones are capitalize, center, count, endswith, find, isalnum, isalpha, isdigit, islower, isspace, isupper, join, ljust, lower, lstrip, partition, replace, rfind, rjust, rpartition, rsplit, rstrip, split, startswith, strip, title, upper, zfill",
            ),
            (
                "print(x)",
                "1:1: calling 'print' is not allowed; only abs, bool, float, int, len, max, min, str and str methods can be called",
            ),
            (
                "(lambda: 1)()",
                "1:1: only abs, bool, float, int, len, max, min, str and str methods can be called",
            ),
            (
                "x[0]()",
                "1:1: only abs, bool, float, int, len, max, min, str and str methods can be called",
            ),
            ("str(x, y)", "1:1: str() takes at most 1 argument (2 given)"),
            ("str(object=1)", "1:5: keyword arguments are not allowed"),
            (
                "'a'.split(sep='@')",
                "1:11: keyword arguments are not allowed",
            ),
            ("str(**x)", "1:5: '**' argument unpacking is not allowed"),
            ("x.lower(1)", "1:3: lower() takes no arguments (1 given)"),
            ("len()", "1:1: len() takes exactly 1 argument (0 given)"),
            ("", "1:1: syntax error: Expected an expression"),
            (
                "x = 1",
                "1:3: syntax error: Unexpected token at the end of an expression",
            ),
            (
                "'abc",
                "1:1: syntax error: missing closing quote in string literal",
            ),
            ("1 +", "1:4: syntax error: Expected an expression"),
        ];
        for (src, want) in cases {
            assert_eq!(parse_error(src), want, "{src}");
        }
    }

    #[test]
    fn evaluation_errors_are_pythonic_and_located() {
        let cases = [
            ("foo", "ERR 1:1: name 'foo' is not defined"),
            ("'a' + foo", "ERR 1:7: name 'foo' is not defined"),
            (
                "'a' + 1",
                "ERR 1:5: can only concatenate str (not \"int\") to str",
            ),
            (
                "[1] + (1,)",
                "ERR 1:5: can only concatenate list (not \"tuple\") to list",
            ),
            (
                "1 + 'a'",
                "ERR 1:3: unsupported operand type(s) for +: 'int' and 'str'",
            ),
            (
                "'a' - 'b'",
                "ERR 1:5: unsupported operand type(s) for -: 'str' and 'str'",
            ),
            (
                "'a' * 1.5",
                "ERR 1:5: can't multiply sequence by non-int of type 'float'",
            ),
            ("-'a'", "ERR 1:1: bad operand type for unary -: 'str'"),
            ("1 / 0", "ERR 1:3: division by zero"),
            ("vlan % 0", "ERR 1:6: division by zero"),
            ("1.5 // 0", "ERR 1:5: division by zero"),
            ("0 ** -1", "ERR 1:3: division by zero"),
            ("9223372036854775807 + 1", "ERR 1:21: integer overflow"),
            ("-9223372036854775807 - 2", "ERR 1:22: integer overflow"),
            ("10**10**10", "ERR 1:3: integer overflow"),
            ("2 ** 63", "ERR 1:3: integer overflow"),
            (
                "vlan.lower()",
                "ERR 1:6: 'int' object has no attribute 'lower'",
            ),
            ("roles[5]", "ERR 1:6: list index out of range"),
            (
                "roles['a']",
                "ERR 1:6: list indices must be integers or slices, not str",
            ),
            ("vlan[0]", "ERR 1:5: 'int' object is not subscriptable"),
            ("'abc'[1:2:0]", "ERR 1:6: slice step cannot be zero"),
            (
                "'%d' % 'x'",
                "ERR 1:6: %d format: a real number is required, not str",
            ),
            (
                "'%s %s' % 'x'",
                "ERR 1:9: not enough arguments for format string",
            ),
            (
                "'a' < 1",
                "ERR 1:5: '<' not supported between instances of 'str' and 'int'",
            ),
            (
                "1 in 'abc'",
                "ERR 1:3: 'in <string>' requires string as left operand, not int",
            ),
            (
                "'a' in vlan",
                "ERR 1:5: argument of type 'int' is not iterable",
            ),
            (
                "int('x')",
                "ERR 1:1: invalid literal for int() with base 10: 'x'",
            ),
            (
                "float('x')",
                "ERR 1:1: could not convert string to float: 'x'",
            ),
            ("len(vlan)", "ERR 1:1: object of type 'int' has no len()"),
            (
                "'a'.join([1])",
                "ERR 1:5: sequence item 0: expected str instance, int found",
            ),
            (
                "x.lower() if foo else 1",
                "ERR 1:14: name 'foo' is not defined",
            ),
            (
                "('ab'\n + \n  missing)",
                "ERR 3:3: name 'missing' is not defined",
            ),
            ("('é' +\n 'x' + ü)", "ERR 2:8: name 'ü' is not defined"),
        ];
        for (src, want) in cases {
            assert_eq!(show(src), want, "{src}");
        }
    }

    #[test]
    fn short_circuit_skips_errors() {
        assert_eq!(show("enabled or foo"), "True");
        assert_eq!(show("empty and foo"), "''");
        assert_eq!(show("1 if enabled else foo"), "1");
        assert_eq!(show("1 > 2 < foo"), "False");
    }

    #[test]
    fn environments() {
        let expr = Expression::parse("a + b").unwrap();
        let mut hash = HashMap::new();
        hash.insert("a".to_owned(), Value::from("x"));
        hash.insert("b".to_owned(), Value::from("y"));
        assert_eq!(expr.evaluate(&hash).unwrap(), Value::from("xy"));
        let tree: BTreeMap<String, Value> = hash.clone().into_iter().collect();
        assert_eq!(expr.evaluate(&tree).unwrap(), Value::from("xy"));
        let closure = |name: &str| Some(Value::Str(name.repeat(2)));
        assert_eq!(expr.evaluate(&closure).unwrap(), Value::from("aabb"));
        let empty = |_: &str| None;
        assert_eq!(
            expr.evaluate(&empty).unwrap_err().to_string(),
            "1:1: name 'a' is not defined"
        );
    }

    #[test]
    fn expression_traits() {
        let expr: Expression = "'ip=' + user_IpAddress".parse().unwrap();
        assert_eq!(expr.source(), "'ip=' + user_IpAddress");
        assert_eq!(expr.to_string(), expr.source());
        assert_eq!(expr, Expression::parse("'ip=' + user_IpAddress").unwrap());
        assert_eq!(
            Expression::parse("vlan")
                .unwrap()
                .evaluate_to_string(&sample_env())
                .unwrap(),
            "100"
        );
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Expression>();
        send_sync::<ExprError>();
    }

    #[test]
    fn parameter_names() {
        for ok in [
            "loginName",
            "user_IpAddress",
            "_x",
            "a1",
            "match",
            "type",
            "_",
        ] {
            assert!(is_valid_parameter_name(ok), "{ok}");
        }
        for bad in [
            "", "1a", "a-b", "a b", "é", "None", "True", "if", "lambda", "__x", "__", "a.",
        ] {
            assert!(!is_valid_parameter_name(bad), "{bad}");
        }
    }

    #[test]
    fn hostile_sizes_fail_fast() {
        let start = std::time::Instant::now();
        let too_large = format!("result too large (the limit is {MAX_VALUE_LEN} bytes or items)");
        for src in [
            "'a' * 10**9",
            "10**9 * 'a'",
            "['a'] * 10**6",
            "'x'.join(['a'] * 10**6)",
            "'%s' * 100000 % ('x',)",
            "('%s' * 30000) % (('x' * 10,) * 30000)",
            "[[1] * 60000] * 60000",
            "'a'.zfill(10**12)",
            "'a'.center(10**12)",
            "'%099999999d' % 1",
            "('a' * 60000).replace('a', 'aa')",
            "'a' * 40000 + 'b' * 40000",
        ] {
            let err = eval(src).unwrap_err();
            assert_eq!(
                err.kind,
                ExprErrorKind::TooLarge { max: MAX_VALUE_LEN },
                "{src}: {err}"
            );
            assert!(err.to_string().ends_with(&too_large));
        }
        let steps = format!("len('a' * 60000){}", " + len('a' * 60000)".repeat(20));
        assert_eq!(
            eval(&steps).unwrap_err().kind,
            ExprErrorKind::StepLimit { max: MAX_STEPS }
        );
        assert_eq!(
            eval("10**10**10").unwrap_err().kind,
            ExprErrorKind::Overflow
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn source_limits() {
        let long = format!("'{}'", "a".repeat(MAX_SOURCE_LEN));
        let err = Expression::parse(&long).unwrap_err();
        assert_eq!(err.position, None);
        assert_eq!(
            err.to_string(),
            format!(
                "expression is too long ({} bytes; the limit is {MAX_SOURCE_LEN})",
                MAX_SOURCE_LEN + 2
            )
        );
        let fits = format!("'{}'", "a".repeat(MAX_SOURCE_LEN - 2));
        assert_eq!(
            eval(&fits).unwrap(),
            Value::Str("a".repeat(MAX_SOURCE_LEN - 2))
        );
        let err = Expression::parse(&"(".repeat(100_000)).unwrap_err();
        assert!(matches!(err.kind, ExprErrorKind::SourceTooLong { .. }));
        let err = Expression::parse(&"(".repeat(1000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "1:{}: expression is nested too deeply (the limit is {MAX_DEPTH} levels)",
                MAX_DEPTH + 1
            )
        );
        // Deep through the checked tree rather than brackets: two prefix runs of 60.
        let two_runs = format!("{}({}x)", "-".repeat(60), "-".repeat(60));
        let err = Expression::parse(&two_runs).unwrap_err();
        assert!(matches!(err.kind, ExprErrorKind::TooDeep { .. }), "{err}");
    }

    #[test]
    fn odd_characters() {
        assert_eq!(eval("'a\0b'").unwrap(), Value::from("a\0b"));
        for src in [
            "\0",
            "x\0",
            "\u{202e}x",
            "x\u{2028}y",
            "😀",
            "'😀' + é",
            "\u{feff}vlan",
            "\\",
            "\r\n",
            "x\r+\r1",
        ] {
            match Expression::parse(src) {
                Ok(expr) => {
                    if let Err(e) = expr.evaluate(&sample_env()) {
                        assert!(e.position.is_none_or(|p| p.is_within(src)), "{src:?}: {e}");
                    }
                }
                Err(e) => assert!(e.position.is_some_and(|p| p.is_within(src)), "{src:?}: {e}"),
            }
        }
        assert_eq!(show("'😀' + é"), "ERR 1:7: name 'é' is not defined");
        // As in Python, only brackets let an expression span lines.
        assert_eq!(
            show("'a' +\n 'b'"),
            "ERR 1:6: syntax error: Expected an expression"
        );
        fuzz_one(b"\xff\xfe'a' + \xc3");
        fuzz_one(b"loginName.split('@')[0]");
        fuzz_one(&[b'('; 5000]);
    }

    /// Hostile sources that must neither overflow a small stack nor panic, in a debug build.
    fn hostile_sources() -> Vec<String> {
        let n = MAX_SOURCE_LEN;
        vec![
            "(".repeat(100_000),
            "(".repeat(n),
            "[".repeat(n),
            "{".repeat(n),
            format!("{}x{}", "(".repeat(n / 2 - 1), ")".repeat(n / 2 - 1)),
            format!("{}x", "-".repeat(n - 1)),
            format!("{}x", "not ".repeat(n / 4 - 1)),
            format!("{}x", "- ".repeat(n / 2 - 1)),
            format!("x{}", "+x".repeat(n / 2 - 1)),
            format!("x{}", "**x".repeat(n / 3 - 1)),
            format!("x{}", ".x".repeat(n / 2 - 1)),
            format!("x{}", ".lower()".repeat(n / 8 - 1)),
            format!("x{}", "()".repeat(n / 2 - 1)),
            format!("x{}", "[0]".repeat(n / 3 - 1)),
            format!("x{}", " if x else x".repeat(n / 12 - 1)),
            format!("{}x", "lambda:".repeat(n / 7 - 1)),
            format!("{}x", "await ".repeat(n / 6 - 1)),
            format!("{}x", "*".repeat(n - 1)),
            format!("{}1{}", "f'{".repeat(n / 5), "}'".repeat(n / 5)),
            format!("{}1", "-(".repeat(n / 2 - 1)),
            format!("x{}", "<x".repeat(n / 2 - 1)),
            format!("x{}", " and x".repeat(n / 6 - 1)),
            format!("[{}]", "x,".repeat(n / 2 - 1)),
            format!("{}x{}", "(".repeat(MAX_DEPTH), "+x".repeat(400)),
            format!("{}x{})", "[".repeat(MAX_DEPTH), " if x else x".repeat(40)),
            format!("{}{}", "x.lower(".repeat(MAX_DEPTH), "**x".repeat(300)),
            // Deep but allowed: these parse and evaluate at the limits.
            format!(
                "{}1{}",
                "str(".repeat(MAX_DEPTH - 1),
                ")".repeat(MAX_DEPTH - 1)
            ),
            format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH)),
            format!("{}1", "-".repeat(MAX_DEPTH)),
            format!(
                "{}1{}",
                "-(".repeat(MAX_DEPTH / 2),
                ")".repeat(MAX_DEPTH / 2)
            ),
            format!("{}1", "not -".repeat(MAX_DEPTH / 2)),
            format!("{}0{}", "(1 + ".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH)),
            format!("{}1", "2 ** ".repeat(MAX_DEPTH)),
            format!("'a'{}", ".lower()".repeat(MAX_DEPTH)),
            format!("1{}", " + 1".repeat(MAX_OPERATORS)),
            format!("{}0", "1 if vlan else ".repeat(MAX_OPERATORS / 2)),
            format!(
                "str({}1{})",
                "-(".repeat(MAX_DEPTH / 2 - 1),
                ")".repeat(MAX_DEPTH / 2 - 1)
            ),
        ]
    }

    #[test]
    fn hostile_inputs_fit_a_small_stack() {
        let worker = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let mut accepted = 0;
                for src in hostile_sources() {
                    match Expression::parse(&src) {
                        Ok(expr) => {
                            accepted += 1;
                            let _ = expr.evaluate(&sample_env()).map(|v| v.to_string());
                        }
                        Err(e) => assert!(e.position.is_none_or(|p| p.is_within(&src)), "{e}"),
                    }
                }
                accepted
            });
        let accepted = worker.unwrap().join().expect("no stack overflow or panic");
        assert!(
            accepted >= 11,
            "the deep but allowed sources parse ({accepted})"
        );
    }

    fn token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "loginName",
            "vlan",
            "roles",
            "empty",
            "nothing",
            "x",
            "str",
            "len",
            "int",
            "max",
            "__class__",
            "__import__",
            "'a'",
            "\"%s\"",
            "'%d%%'",
            "''",
            "0",
            "1",
            "-1",
            "63",
            "10",
            "2.5",
            "1e308",
            "True",
            "None",
            "+",
            "-",
            "*",
            "/",
            "//",
            "%",
            "**",
            "==",
            "!=",
            "<",
            ">=",
            "and",
            "or",
            "not",
            "in",
            "is",
            "if",
            "else",
            "lambda",
            ":",
            ",",
            ".",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ":=",
            "f'",
            "'",
            "@",
            "~",
            "split",
            "join",
            "lower",
            "replace",
            "zfill",
            "\\",
            "\n",
            "#",
            "...",
            "yield",
            "await",
            "for",
        ])
    }

    fn check_any(source: &str) {
        match Expression::parse(source) {
            Ok(expr) => {
                if let Err(e) = expr.evaluate(&sample_env()) {
                    assert!(
                        e.position.is_none_or(|p| p.is_within(source)),
                        "{source:?}: {e}"
                    );
                }
            }
            Err(e) => {
                let inside = e.position.is_some_and(|p| p.is_within(source));
                assert!(inside || source.len() > MAX_SOURCE_LEN, "{source:?}: {e}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_strings_never_panic(source in "\\PC{0,120}") {
            check_any(&source);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..200)) {
            fuzz_one(&data);
        }

        #[test]
        fn token_soup_never_panics(
            tokens in prop::collection::vec(token(), 0..40),
            spaced in any::<bool>(),
        ) {
            check_any(&tokens.join(if spaced { " " } else { "" }));
        }
    }
}
