//! Failures of `saectl` and their exit statuses (documented in [`crate::cli::EXIT_STATUS_HELP`]).

use std::fmt;
use std::time::Duration;

use tonic::{Code, Status};

/// Any other failure.
pub const EXIT_FAILURE: u8 = 1;
/// The command line is wrong, or the server refused the request (NOT_FOUND, INVALID_ARGUMENT,
/// FAILED_PRECONDITION). clap's own usage errors exit 2 too.
pub const EXIT_REFUSED: u8 = 2;
/// The server cannot be reached (sysexits EX_UNAVAILABLE).
pub const EXIT_UNREACHABLE: u8 = 69;

#[derive(Debug)]
pub enum CtlError {
    /// The command line, or a file it names, is wrong; nothing was sent.
    Usage(String),
    /// No connection to the server.
    Unreachable { server: String, detail: String },
    /// The server answered with an error status.
    Status(Status),
    /// No answer within `--timeout`.
    Timeout(Duration),
    /// The router refused the change or did not answer; its answer was printed.
    Router(String),
    /// `health`: the node answered with another status than SERVING (printed).
    NotServing(String),
    /// Writing the output failed.
    Output(std::io::Error),
}

impl CtlError {
    /// A status returned by a call. An UNAVAILABLE status made by the client's own transport
    /// (it has the transport error as its source) means the server went away; one sent by the
    /// server (e.g. the subscriber's router is not connected) is an answer.
    pub fn from_status(status: Status, server: &str) -> CtlError {
        if status.code() == Code::Unavailable && std::error::Error::source(&status).is_some() {
            return CtlError::Unreachable {
                server: server.to_owned(),
                detail: status.message().to_owned(),
            };
        }
        CtlError::Status(status)
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => EXIT_REFUSED,
            CtlError::Unreachable { .. } => EXIT_UNREACHABLE,
            CtlError::Status(s) => match s.code() {
                Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition => EXIT_REFUSED,
                _ => EXIT_FAILURE,
            },
            CtlError::Timeout(_)
            | CtlError::Router(_)
            | CtlError::NotServing(_)
            | CtlError::Output(_) => EXIT_FAILURE,
        }
    }

    /// Stdout was closed by its reader (`saectl ... | head`): not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CtlError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::Usage(m) => write!(f, "{m}"),
            CtlError::Unreachable { server, detail } => {
                write!(
                    f,
                    "UNAVAILABLE: cannot reach the SAE node at {server}: {detail}"
                )
            }
            CtlError::Status(s) => {
                let message = if s.message().is_empty() {
                    s.code().description()
                } else {
                    s.message()
                };
                write!(f, "{}: {message}", code_name(s.code()))
            }
            CtlError::Timeout(d) => write!(
                f,
                "DEADLINE_EXCEEDED: no answer within {} s (--timeout)",
                d.as_secs_f64()
            ),
            CtlError::Router(m) => write!(f, "{m}"),
            CtlError::NotServing(status) => write!(f, "the node is not serving: {status}"),
            CtlError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for CtlError {}

impl From<std::io::Error> for CtlError {
    fn from(e: std::io::Error) -> Self {
        CtlError::Output(e)
    }
}

/// The canonical name of a gRPC status code, as in the gRPC specification.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_status_code() {
        for (code, exit) in [
            (Code::NotFound, 2),
            (Code::InvalidArgument, 2),
            (Code::FailedPrecondition, 2),
            (Code::Unavailable, 1),
            (Code::Unimplemented, 1),
            (Code::Internal, 1),
            (Code::DeadlineExceeded, 1),
            (Code::AlreadyExists, 1),
        ] {
            let e = CtlError::from_status(Status::new(code, "x"), "http://sae:1");
            assert_eq!(e.exit_code(), exit, "{code:?}");
        }
        assert_eq!(CtlError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CtlError::Timeout(Duration::from_secs(1)).exit_code(), 1);
        assert_eq!(CtlError::Router("x".into()).exit_code(), 1);
        assert_eq!(CtlError::NotServing("NOT_SERVING".into()).exit_code(), 1);
    }

    #[test]
    fn a_transport_failure_is_unreachable_but_a_server_unavailable_is_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let mut status = Status::unavailable("connection reset");
        status.set_source(std::sync::Arc::new(io));
        let e = CtlError::from_status(status, "http://sae:1");
        assert_eq!(e.exit_code(), 69);
        assert_eq!(
            e.to_string(),
            "UNAVAILABLE: cannot reach the SAE node at http://sae:1: connection reset"
        );

        let e = CtlError::from_status(
            Status::unavailable("router r1 is not connected"),
            "http://sae:1",
        );
        assert_eq!(e.exit_code(), 1);
        assert_eq!(e.to_string(), "UNAVAILABLE: router r1 is not connected");
    }

    #[test]
    fn messages_name_the_status_code() {
        let e = CtlError::Status(Status::not_found("no service \"gold\""));
        assert_eq!(e.to_string(), "NOT_FOUND: no service \"gold\"");
        let e = CtlError::Status(Status::new(Code::Unimplemented, ""));
        assert!(e.to_string().starts_with("UNIMPLEMENTED: "), "{e}");
        assert!(e.to_string().len() > "UNIMPLEMENTED: ".len(), "{e}");
        assert!(CtlError::Output(std::io::ErrorKind::BrokenPipe.into()).is_broken_pipe());
    }
}
