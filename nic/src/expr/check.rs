//! Parsing and the static check: the pre-parse gate on the token stream, then the conversion
//! of the parser's AST into the small checked [`Node`] tree the evaluator runs, refusing every
//! construct outside the allowed subset.

use std::collections::BTreeSet;

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::{self as ast, Expr};
use ruff_python_parser::{Mode, lexer};
use ruff_text_size::{Ranged, TextRange, TextSize};

use super::builtins::{Builtin, Method, arity_error};
use super::error::{ExprError, ExprErrorKind, Located};
use super::value::Value;
use super::{MAX_DEPTH, MAX_OPERATORS, MAX_SOURCE_LEN};

/// A checked expression node; `at` is the byte offset its errors are reported at.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) at: u32,
    pub(crate) kind: Kind,
}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Const(Value),
    Name(String),
    List(Vec<Node>),
    Tuple(Vec<Node>),
    Unary(UnaryOp, Box<Node>),
    /// A left-associative chain `first op1 x1 op2 x2 …`, i.e. `((first op1 x1) op2 x2) …`,
    /// each operator with its offset. Flattened so that long `a + b + c …` chains do not nest.
    Binary(Box<Node>, Vec<(BinOp, u32, Node)>),
    And(Vec<Node>),
    Or(Vec<Node>),
    /// `first op1 x1 op2 x2 …` with Python's chaining.
    Compare(Box<Node>, Vec<(CmpOp, u32, Node)>),
    /// `body1 if test1 else body2 if test2 else … orelse` as `(test, body)` pairs.
    Cond(Vec<(Node, Node)>, Box<Node>),
    Index(Box<Node>, Box<Node>),
    Slice(Box<Node>, [Option<Box<Node>>; 3]),
    Call(Builtin, Vec<Node>),
    Method(Box<Node>, Method, Vec<Node>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Neg,
    Pos,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "** or pow()",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtE,
    Gt,
    GtE,
    In,
    NotIn,
    Is,
    IsNot,
}

/// Parses and checks `source`; returns the checked tree and the free names it reads.
pub(crate) fn parse(source: &str) -> Result<(Node, Vec<String>), ExprError> {
    if source.len() > MAX_SOURCE_LEN {
        let kind = ExprErrorKind::SourceTooLong {
            len: source.len(),
            max: MAX_SOURCE_LEN,
        };
        return Err(ExprError::new(kind, None));
    }
    // Python's eval() accepts leading blanks; the parser would call them an indentation.
    let body = source.trim_start_matches([' ', '\t', '\x0c', '\r', '\n']);
    let start = source.len() - body.len();
    if let Some(kind) = gate(body) {
        return Err(ExprError::at(
            source,
            start + locate(body, |p| gate(p).is_some()),
            kind,
        ));
    }
    // Both offsets are at most MAX_SOURCE_LEN, far below u32::MAX.
    let range = TextRange::new(
        TextSize::new(start as u32),
        TextSize::new(source.len() as u32),
    );
    let parsed = ruff_python_parser::parse_expression_range(source, range).map_err(|e| {
        let kind = ExprErrorKind::Syntax(e.error.to_string());
        ExprError::at(source, e.location.start().to_usize(), kind)
    })?;
    let mut checker = Checker {
        source,
        names: BTreeSet::new(),
    };
    let node = checker
        .expr(parsed.expr(), 0)
        .map_err(|e| e.into_error(source))?;
    Ok((node, checker.names.into_iter().collect()))
}

/// The pre-parse gate, on the parser's own lexer: refuses sources whose brackets or runs of
/// prefix operators nest deeper than [`MAX_DEPTH`], or that have more than [`MAX_OPERATORS`]
/// operator, bracket and keyword tokens. Every level of the parser's AST comes from one such
/// token, so this bounds the AST depth — which matters because the AST is dropped recursively.
fn gate(source: &str) -> Option<ExprErrorKind> {
    use TokenKind as T;
    let mut lexer = lexer::lex(source, Mode::Expression);
    let (mut depth, mut operators, mut prefix_run) = (0usize, 0usize, 0usize);
    let mut after_operand = false;
    // Every token but a few synthetic ones consumes input, so the lexer ends well before this.
    for _ in 0..2 * source.len() + 64 {
        let kind = lexer.next_token();
        match kind {
            T::EndOfFile => return None,
            T::Comment | T::NonLogicalNewline | T::Newline | T::Indent | T::Dedent => continue,
            T::Name
            | T::Int
            | T::Float
            | T::Complex
            | T::String
            | T::True
            | T::False
            | T::None
            | T::FStringMiddle
            | T::TStringMiddle => (after_operand, prefix_run) = (true, 0),
            T::Rpar | T::Rsqb | T::Rbrace | T::FStringEnd | T::TStringEnd => {
                depth = depth.saturating_sub(1);
                (after_operand, prefix_run) = (true, 0);
            }
            T::Comma => (after_operand, prefix_run) = (false, 0),
            _ => {
                operators += 1;
                if operators > MAX_OPERATORS {
                    return Some(ExprErrorKind::TooComplex { max: MAX_OPERATORS });
                }
                let opens = matches!(
                    kind,
                    T::Lpar | T::Lsqb | T::Lbrace | T::FStringStart | T::TStringStart
                );
                let prefix = matches!(
                    kind,
                    T::Minus | T::Plus | T::Tilde | T::Not | T::Star | T::DoubleStar | T::Await
                ) && !after_operand;
                if opens {
                    depth += 1;
                }
                prefix_run = if prefix { prefix_run + 1 } else { 0 };
                if depth > MAX_DEPTH || prefix_run > MAX_DEPTH {
                    return Some(ExprErrorKind::TooDeep { max: MAX_DEPTH });
                }
                after_operand = false;
            }
        }
    }
    Some(ExprErrorKind::TooComplex { max: MAX_OPERATORS })
}

/// The offset of the character at which `fails` first holds for the source up to and
/// including it (binary search over prefixes; approximate if `fails` is not monotonic).
fn locate(source: &str, fails: impl Fn(&str) -> bool) -> usize {
    let ends: Vec<usize> = source
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .collect();
    let first = ends.partition_point(|&end| !fails(&source[..end]));
    let end = ends.get(first).copied().unwrap_or(source.len());
    source[..end]
        .char_indices()
        .next_back()
        .map_or(0, |(i, _)| i)
}

/// A call's target: a builtin, or a str method with its receiver.
enum Callee<'e> {
    Builtin(Builtin),
    Method(Method, &'e Expr),
}

struct Checker<'s> {
    source: &'s str,
    names: BTreeSet<String>,
}

fn refuse<T>(at: impl Into<u32>, message: impl Into<String>) -> Result<T, Located> {
    Err(Located {
        at: at.into(),
        kind: ExprErrorKind::NotAllowed(message.into()),
    })
}

fn start(node: &impl Ranged) -> u32 {
    node.start().to_u32()
}

fn check_name(name: &str, at: u32) -> Result<(), Located> {
    if name.starts_with("__") {
        return refuse(
            at,
            format!("names starting with '__' are not allowed: '{name}'"),
        );
    }
    Ok(())
}

fn number(n: &ast::ExprNumberLiteral) -> Result<Value, Located> {
    match &n.value {
        ast::Number::Int(i) => match i.as_i64() {
            Some(i) => Ok(Value::Int(i)),
            None => refuse(
                start(n),
                "integer literal is too large (integers are 64-bit)",
            ),
        },
        ast::Number::Float(f) => Ok(Value::Float(*f)),
        ast::Number::Complex { .. } => refuse(start(n), "complex numbers are not supported"),
    }
}

/// The error for a construct outside the subset (any node kind the checker does not convert).
fn refusal(e: &Expr) -> Located {
    let message = match e {
        Expr::Attribute(a) => {
            let at = start(&a.attr);
            if let Err(dunder) = check_name(a.attr.as_str(), at) {
                return dunder;
            }
            let message =
                "attribute access is only allowed to call a str method, e.g. name.lower()";
            return Located {
                at,
                kind: ExprErrorKind::NotAllowed(message.into()),
            };
        }
        Expr::Slice(_) => "slices are only allowed directly inside [...]",
        Expr::FString(_) => "f-strings are not supported; use % or +",
        Expr::TString(_) => "t-strings are not supported; use % or +",
        Expr::BytesLiteral(_) => "bytes literals are not supported",
        Expr::EllipsisLiteral(_) => "'...' (Ellipsis) is not supported",
        Expr::Lambda(_) => "lambda expressions are not allowed",
        Expr::ListComp(_) | Expr::SetComp(_) | Expr::DictComp(_) => {
            "comprehensions are not allowed"
        }
        Expr::Generator(_) => "generator expressions are not allowed",
        Expr::Named(_) => "assignment expressions (:=) are not allowed",
        Expr::Await(_) => "'await' is not allowed",
        Expr::Yield(_) | Expr::YieldFrom(_) => "'yield' is not allowed",
        Expr::Starred(_) => "starred expressions (*x) are not allowed",
        Expr::Dict(_) => "dict displays ({...}) are not allowed",
        Expr::Set(_) => "set displays ({...}) are not allowed",
        Expr::IpyEscapeCommand(_) => "IPython escape commands are not allowed",
        _ => "this construct is not allowed",
    };
    Located {
        at: start(e),
        kind: ExprErrorKind::NotAllowed(message.into()),
    }
}

impl Checker<'_> {
    /// Checks and converts `e`, which sits `depth` levels below the root. Each kind of node
    /// has its own method, so that this recursive dispatcher's stack frame stays small even in
    /// debug builds.
    fn expr(&mut self, e: &Expr, depth: usize) -> Result<Node, Located> {
        let at = start(e);
        if depth > MAX_DEPTH {
            return Err(Located {
                at,
                kind: ExprErrorKind::TooDeep { max: MAX_DEPTH },
            });
        }
        let d = depth + 1;
        // One `?` for all arms keeps the frame small in debug builds.
        let kind = match e {
            Expr::StringLiteral(s) => Ok(Kind::Const(Value::Str(s.value.to_str().to_owned()))),
            Expr::NumberLiteral(n) => number(n).map(Kind::Const),
            Expr::BooleanLiteral(b) => Ok(Kind::Const(Value::Bool(b.value))),
            Expr::NoneLiteral(_) => Ok(Kind::Const(Value::None)),
            Expr::Name(n) => self.name(n),
            Expr::List(l) => self.all(&l.elts, d).map(Kind::List),
            Expr::Tuple(t) => self.all(&t.elts, d).map(Kind::Tuple),
            Expr::UnaryOp(u) => self.unary(u, d),
            Expr::BinOp(_) => self.binary(e, d),
            Expr::BoolOp(b) => self.boolean(b, d),
            Expr::Compare(c) => self.compare(c, d),
            Expr::If(_) => self.conditional(e, d),
            Expr::Subscript(s) => return self.subscript(s, d),
            Expr::Call(c) => return self.call(c, d),
            other => Err(refusal(other)),
        }?;
        Ok(Node { at, kind })
    }

    fn name(&mut self, n: &ast::ExprName) -> Result<Kind, Located> {
        check_name(n.id.as_str(), start(n))?;
        self.names.insert(n.id.to_string());
        Ok(Kind::Name(n.id.to_string()))
    }

    fn unary(&mut self, u: &ast::ExprUnaryOp, depth: usize) -> Result<Kind, Located> {
        let op = match u.op {
            ast::UnaryOp::USub => UnaryOp::Neg,
            ast::UnaryOp::UAdd => UnaryOp::Pos,
            ast::UnaryOp::Not => UnaryOp::Not,
            ast::UnaryOp::Invert => return refuse(start(u), "operator '~' is not supported"),
        };
        Ok(Kind::Unary(op, Box::new(self.expr(&u.operand, depth)?)))
    }

    fn boolean(&mut self, b: &ast::ExprBoolOp, depth: usize) -> Result<Kind, Located> {
        let values = self.all(&b.values, depth)?;
        Ok(match b.op {
            ast::BoolOp::And => Kind::And(values),
            ast::BoolOp::Or => Kind::Or(values),
        })
    }

    fn all(&mut self, exprs: &[Expr], depth: usize) -> Result<Vec<Node>, Located> {
        // A plain loop: iterator adapters would add several frames per nesting level in
        // debug builds.
        let mut nodes = Vec::with_capacity(exprs.len());
        for e in exprs {
            nodes.push(self.expr(e, depth)?);
        }
        Ok(nodes)
    }

    /// The offset of the operator between two operands: the first character in the gap that
    /// is not blank, a closing parenthesis, a line continuation or a comment.
    fn operator_at(&self, left: &Expr, right: &Expr) -> u32 {
        let (from, to) = (left.end().to_usize(), right.start().to_usize());
        let gap = self.source.get(from..to).unwrap_or_default();
        let mut in_comment = false;
        for (i, c) in gap.char_indices() {
            match c {
                '\n' | '\r' => in_comment = false,
                _ if in_comment => {}
                '#' => in_comment = true,
                ')' | '\\' => {}
                c if c.is_whitespace() => {}
                _ => return (from + i) as u32,
            }
        }
        from as u32
    }

    fn binary(&mut self, e: &Expr, depth: usize) -> Result<Kind, Located> {
        let mut spine = Vec::new();
        let mut first = e;
        while let Expr::BinOp(b) = first {
            spine.push(b);
            first = &b.left;
        }
        let first = self.expr(first, depth)?;
        let mut rest = Vec::with_capacity(spine.len());
        for b in spine.into_iter().rev() {
            let at = self.operator_at(&b.left, &b.right);
            let op = match b.op {
                ast::Operator::Add => BinOp::Add,
                ast::Operator::Sub => BinOp::Sub,
                ast::Operator::Mult => BinOp::Mul,
                ast::Operator::Div => BinOp::Div,
                ast::Operator::FloorDiv => BinOp::FloorDiv,
                ast::Operator::Mod => BinOp::Mod,
                ast::Operator::Pow => BinOp::Pow,
                other => {
                    return refuse(
                        at,
                        format!("operator '{}' is not supported", other.as_str()),
                    );
                }
            };
            rest.push((op, at, self.expr(&b.right, depth)?));
        }
        Ok(Kind::Binary(Box::new(first), rest))
    }

    fn compare(&mut self, c: &ast::ExprCompare, depth: usize) -> Result<Kind, Located> {
        let first = self.expr(&c.left, depth)?;
        let mut rest = Vec::with_capacity(c.ops.len());
        let mut left = &*c.left;
        for (op, right) in c.ops.iter().zip(&c.comparators) {
            let at = self.operator_at(left, right);
            let op = match op {
                ast::CmpOp::Eq => CmpOp::Eq,
                ast::CmpOp::NotEq => CmpOp::NotEq,
                ast::CmpOp::Lt => CmpOp::Lt,
                ast::CmpOp::LtE => CmpOp::LtE,
                ast::CmpOp::Gt => CmpOp::Gt,
                ast::CmpOp::GtE => CmpOp::GtE,
                ast::CmpOp::In => CmpOp::In,
                ast::CmpOp::NotIn => CmpOp::NotIn,
                ast::CmpOp::Is | ast::CmpOp::IsNot => {
                    if !left.is_none_literal_expr() && !right.is_none_literal_expr() {
                        return refuse(at, "'is' is only allowed to compare with None; use '=='");
                    }
                    if *op == ast::CmpOp::Is {
                        CmpOp::Is
                    } else {
                        CmpOp::IsNot
                    }
                }
            };
            rest.push((op, at, self.expr(right, depth)?));
            left = right;
        }
        Ok(Kind::Compare(Box::new(first), rest))
    }

    fn conditional(&mut self, e: &Expr, depth: usize) -> Result<Kind, Located> {
        let mut branches = Vec::new();
        let mut orelse = e;
        while let Expr::If(i) = orelse {
            let body = self.expr(&i.body, depth)?;
            branches.push((self.expr(&i.test, depth)?, body));
            orelse = &i.orelse;
        }
        Ok(Kind::Cond(branches, Box::new(self.expr(orelse, depth)?)))
    }

    fn subscript(&mut self, s: &ast::ExprSubscript, depth: usize) -> Result<Node, Located> {
        let value = Box::new(self.expr(&s.value, depth)?);
        let at = self.operator_at(&s.value, &s.slice);
        let kind = match &*s.slice {
            Expr::Slice(slice) => {
                let mut part = |p: &Option<Box<Expr>>| -> Result<Option<Box<Node>>, Located> {
                    p.as_deref()
                        .map(|e| self.expr(e, depth).map(Box::new))
                        .transpose()
                };
                Kind::Slice(
                    value,
                    [part(&slice.lower)?, part(&slice.upper)?, part(&slice.step)?],
                )
            }
            index => Kind::Index(value, Box::new(self.expr(index, depth)?)),
        };
        Ok(Node { at, kind })
    }

    fn call(&mut self, c: &ast::ExprCall, depth: usize) -> Result<Node, Located> {
        let (at, callee) = callee(c)?;
        let args = &c.arguments.args;
        let kind = match callee {
            Callee::Builtin(builtin) => self.all(args, depth).map(|args| Kind::Call(builtin, args)),
            Callee::Method(method, receiver) => self.method(method, receiver, args, depth),
        }?;
        Ok(Node { at, kind })
    }

    fn method(
        &mut self,
        method: Method,
        receiver: &Expr,
        args: &[Expr],
        depth: usize,
    ) -> Result<Kind, Located> {
        let receiver = Box::new(self.expr(receiver, depth)?);
        Ok(Kind::Method(receiver, method, self.all(args, depth)?))
    }
}

/// What a call calls, and where its errors are reported; checks everything about the call
/// but its receiver and arguments.
fn callee(c: &ast::ExprCall) -> Result<(u32, Callee<'_>), Located> {
    let (at, name, callee, (min, max)) = match &*c.func {
        Expr::Name(n) => {
            let at = start(n);
            check_name(n.id.as_str(), at)?;
            let Some(builtin) = Builtin::from_name(n.id.as_str()) else {
                let list = Builtin::list();
                let message = format!(
                    "calling '{}' is not allowed; only {list} and str methods can be called",
                    n.id
                );
                return refuse(at, message);
            };
            (
                at,
                builtin.name(),
                Callee::Builtin(builtin),
                builtin.arity(),
            )
        }
        Expr::Attribute(a) => {
            let at = start(&a.attr);
            check_name(a.attr.as_str(), at)?;
            let Some(method) = Method::from_name(a.attr.as_str()) else {
                let list = Method::list();
                let message = format!(
                    "'{}' is not an allowed str method; the allowed ones are {list}",
                    a.attr
                );
                return refuse(at, message);
            };
            (
                at,
                method.name(),
                Callee::Method(method, &a.value),
                method.arity(),
            )
        }
        _ => {
            let message = format!("only {} and str methods can be called", Builtin::list());
            return refuse(start(c), message);
        }
    };
    if let Some(keyword) = c.arguments.keywords.first() {
        let message = match keyword.arg {
            Some(_) => "keyword arguments are not allowed",
            None => "'**' argument unpacking is not allowed",
        };
        return refuse(start(keyword), message);
    }
    if let Some(message) = arity_error(name, min, max, c.arguments.args.len()) {
        return Err(Located {
            at,
            kind: ExprErrorKind::Type(message),
        });
    }
    Ok((at, callee))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(src: &str) -> String {
        match parse(src) {
            Ok(_) => panic!("{src:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_are_collected_sorted_and_deduplicated() {
        let (_, names) = parse("b + a + b if c else str(d).lower()").unwrap();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn leading_blanks_are_accepted_and_positions_stay_absolute() {
        assert!(parse("  \n\t 'a' + b").is_ok());
        assert_eq!(
            refused("  x.y"),
            "1:5: attribute access is only allowed to call a str method, e.g. name.lower()"
        );
    }

    #[test]
    fn operator_positions_skip_parentheses_and_comments() {
        assert_eq!(refused("(a) << b"), "1:5: operator '<<' is not supported");
        assert_eq!(
            refused("(a # note\n ) @ b"),
            "2:4: operator '@' is not supported"
        );
        assert_eq!(
            refused("x is 1"),
            "1:3: 'is' is only allowed to compare with None; use '=='"
        );
    }

    #[test]
    fn gate_bounds_brackets_prefix_runs_and_operators() {
        let deep = format!(
            "{}x{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let msg = format!(
            "1:{}: expression is nested too deeply (the limit is {MAX_DEPTH} levels)",
            MAX_DEPTH + 1
        );
        assert_eq!(refused(&deep), msg);
        assert!(
            parse(&format!(
                "{}x{}",
                "(".repeat(MAX_DEPTH),
                ")".repeat(MAX_DEPTH)
            ))
            .is_ok()
        );
        let run = format!("{}x", "- ".repeat(MAX_DEPTH + 1));
        assert!(
            refused(&run).contains("nested too deeply"),
            "{}",
            refused(&run)
        );
        let nots = format!("{}x", "not ".repeat(MAX_DEPTH + 1));
        assert!(refused(&nots).contains("nested too deeply"));
        // Binary operators between operands do not form a prefix run.
        assert!(parse(&format!("x{}", " - -x".repeat(MAX_DEPTH))).is_ok());
        let long = format!("x{}", "+x".repeat(MAX_OPERATORS + 1));
        assert!(refused(&long).contains("too complex"));
        assert!(parse(&format!("x{}", "+x".repeat(MAX_OPERATORS))).is_ok());
    }

    #[test]
    fn locate_finds_the_first_failing_character() {
        assert_eq!(locate("abcXdef", |p| p.contains('X')), 3);
        assert_eq!(locate("éX", |p| p.contains('X')), 2);
        assert_eq!(locate("abc", |_| false), 2);
        assert_eq!(locate("", |_| true), 0);
    }

    #[test]
    fn chains_are_flat() {
        let (node, _) = parse(&format!("x{}", "+x".repeat(400))).unwrap();
        let Kind::Binary(_, rest) = node.kind else {
            panic!("not a chain")
        };
        assert_eq!(rest.len(), 400);
        let src = format!("{}x", "x if c else ".repeat(100));
        let (node, _) = parse(&src).unwrap();
        let Kind::Cond(branches, _) = node.kind else {
            panic!("not a conditional")
        };
        assert_eq!(branches.len(), 100);
    }
}
