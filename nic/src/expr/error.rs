//! Errors of parsing, checking and evaluating an expression, and source positions.

use std::fmt;

/// A place in the expression's source: 1-based line and 1-based column counted in characters.
///
/// Lines end at `\n`, `\r\n` or a lone `\r`, as in Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    /// The position of byte `offset` of `source` (clamped to the source, and to the start of
    /// the character that holds it).
    pub fn from_offset(source: &str, offset: usize) -> Position {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let (mut line, mut column) = (1u32, 1u32);
        let mut chars = source[..offset].chars().peekable();
        while let Some(c) = chars.next() {
            let newline = c == '\n' || (c == '\r' && chars.peek() != Some(&'\n'));
            if newline {
                line = line.saturating_add(1);
                column = 1;
            } else if c != '\r' {
                column = column.saturating_add(1);
            }
        }
        Position { line, column }
    }

    /// Whether the position lies on a line of `source`, at one of its characters or just
    /// after its last one.
    pub fn is_within(&self, source: &str) -> bool {
        let mut line_lengths = vec![0usize];
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' | '\r' => line_lengths.push(0),
                _ => {
                    if let Some(n) = line_lengths.last_mut() {
                        *n += 1;
                    }
                }
            }
        }
        let line = (self.line as usize)
            .checked_sub(1)
            .and_then(|i| line_lengths.get(i));
        self.column >= 1 && line.is_some_and(|&n| self.column as usize <= n + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What went wrong. The wording follows Python's messages where Python has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprErrorKind {
    /// The source is longer than [`MAX_SOURCE_LEN`](super::MAX_SOURCE_LEN) bytes.
    #[error("expression is too long ({len} bytes; the limit is {max})")]
    SourceTooLong { len: usize, max: usize },
    /// Brackets, prefix operators or sub-expressions nest deeper than
    /// [`MAX_DEPTH`](super::MAX_DEPTH).
    #[error("expression is nested too deeply (the limit is {max} levels)")]
    TooDeep { max: usize },
    /// The source has more than [`MAX_OPERATORS`](super::MAX_OPERATORS) operator tokens.
    #[error("expression is too complex (more than {max} operators, brackets and keywords)")]
    TooComplex { max: usize },
    /// The Python parser refused the source (its own message).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Valid Python, but outside the allowed subset (refused by [`Expression::parse`](super::Expression::parse)).
    #[error("{0}")]
    NotAllowed(String),
    /// A name that the environment does not define.
    #[error("name '{0}' is not defined")]
    UndefinedName(String),
    /// An operation applied to a value of the wrong type (Python's `TypeError`).
    #[error("{0}")]
    Type(String),
    /// A value of the right type but a wrong content (Python's `ValueError`).
    #[error("{0}")]
    Value(String),
    /// An index out of range (Python's `IndexError`).
    #[error("{0}")]
    Index(String),
    /// A method called on a value that has no such method (Python's `AttributeError`).
    #[error("{0}")]
    Attribute(String),
    /// Division or modulo by zero, or zero raised to a negative power.
    #[error("division by zero")]
    ZeroDivision,
    /// An integer result outside the 64-bit signed range, or a float result out of range.
    #[error("integer overflow")]
    Overflow,
    /// Evaluation took more than [`MAX_STEPS`](super::MAX_STEPS) steps.
    #[error("evaluation step limit exceeded ({max} steps)")]
    StepLimit { max: u64 },
    /// A string or list would be larger than [`MAX_VALUE_LEN`](super::MAX_VALUE_LEN).
    #[error("result too large (the limit is {max} bytes or items)")]
    TooLarge { max: usize },
}

/// An error with the place in the source it refers to, when known.
///
/// Displays as `line:column: message`, e.g. `1:7: name 'foo' is not defined`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", prefix(.position))]
pub struct ExprError {
    pub position: Option<Position>,
    pub kind: ExprErrorKind,
}

fn prefix(position: &Option<Position>) -> String {
    position.map(|p| format!("{p}: ")).unwrap_or_default()
}

impl ExprError {
    pub fn new(kind: ExprErrorKind, position: Option<Position>) -> ExprError {
        ExprError { position, kind }
    }

    /// An error at byte `offset` of `source`.
    pub(crate) fn at(source: &str, offset: usize, kind: ExprErrorKind) -> ExprError {
        ExprError::new(kind, Some(Position::from_offset(source, offset)))
    }
}

/// An error located by a byte offset, before it is turned into a [`Position`].
#[derive(Debug)]
pub(crate) struct Located {
    pub(crate) at: u32,
    pub(crate) kind: ExprErrorKind,
}

impl Located {
    pub(crate) fn into_error(self, source: &str) -> ExprError {
        ExprError::at(source, self.at as usize, self.kind)
    }
}

/// Helpers to build the Python-like kinds.
pub(crate) fn type_err(msg: impl Into<String>) -> ExprErrorKind {
    ExprErrorKind::Type(msg.into())
}

pub(crate) fn value_err(msg: impl Into<String>) -> ExprErrorKind {
    ExprErrorKind::Value(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_and_lines() {
        let src = "ab\ncdé\r\nf\rg";
        let at = |o| Position::from_offset(src, o);
        assert_eq!(at(0), Position { line: 1, column: 1 });
        assert_eq!(at(2), Position { line: 1, column: 3 });
        assert_eq!(at(3), Position { line: 2, column: 1 });
        assert_eq!(at(7), Position { line: 2, column: 4 });
        assert_eq!(at(9), Position { line: 3, column: 1 });
        assert_eq!(at(11), Position { line: 4, column: 1 });
        // Inside a multi-byte character and past the end: clamped.
        assert_eq!(at(6), Position { line: 2, column: 3 });
        assert_eq!(at(100), Position { line: 4, column: 2 });
    }

    #[test]
    fn display_puts_the_position_first() {
        let e = ExprError::new(
            ExprErrorKind::UndefinedName("foo".into()),
            Some(Position { line: 1, column: 7 }),
        );
        assert_eq!(e.to_string(), "1:7: name 'foo' is not defined");
        let e = ExprError::new(ExprErrorKind::ZeroDivision, None);
        assert_eq!(e.to_string(), "division by zero");
    }
}
