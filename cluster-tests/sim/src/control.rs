//! The `--control` commands read on stdin, one per line.

use std::net::Ipv4Addr;

use crate::router_state::AcctType;

/// One control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `login <user> [ip] [nas-port-id]`
    Login {
        user: String,
        ip: Option<Ipv4Addr>,
        nas_port_id: Option<String>,
    },
    /// `logout <user|session-id>`: STR with Termination-Cause 1.
    Logout(String),
    /// `idle <user|session-id>`: STR with Termination-Cause 14 now.
    Idle(String),
    /// `acct <user|session-id> start|interim|stop`
    Acct(String, AcctType),
    /// `touch <user|session-id>`: subscriber activity (resets the inactivity timer).
    Touch(String),
    /// `str-unknown <session-id>`: an STR for that Session-Id whatever the table holds.
    StrUnknown(String),
    /// `srq`: SRQ to the active SAE now.
    Srq,
    /// `fail-ppr <glob>` adds a glob; `fail-ppr off` clears them (`None`).
    FailPpr(Option<String>),
    /// `drop-ppr <glob>` adds a glob; `drop-ppr off` clears them (`None`).
    DropPpr(Option<String>),
    /// `drop-srq <n>`: leave the next n SRQs from the SAEs unanswered; `drop-srq off` is 0.
    DropSrq(u32),
    /// `drop`: close the TCP connections without DPR.
    Drop,
    /// `dpr`: DPR, then close.
    Dpr,
    /// `list`: a `session` event per session.
    List,
    /// `quit`: DPR and exit.
    Quit,
}

impl Control {
    /// Parses a line; `Ok(None)` for blank lines and `#` comments.
    pub fn parse(line: &str) -> Result<Option<Control>, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| {
            words
                .get(i)
                .map(|s| (*s).to_owned())
                .ok_or_else(|| format!("`{}` needs an argument: {line}", words[0]))
        };
        let max_args = |n: usize| {
            if words.len() > n + 1 {
                Err(format!("too many arguments: {line}"))
            } else {
                Ok(())
            }
        };
        let cmd = match words[0] {
            "login" => {
                max_args(3)?;
                let ip = match words.get(2) {
                    Some(ip) => Some(
                        ip.parse::<Ipv4Addr>()
                            .map_err(|e| format!("bad IPv4 address {ip}: {e}"))?,
                    ),
                    None => None,
                };
                Control::Login {
                    user: arg(1)?,
                    ip,
                    nas_port_id: words.get(3).map(|s| (*s).to_owned()),
                }
            }
            "logout" => {
                max_args(1)?;
                Control::Logout(arg(1)?)
            }
            "idle" => {
                max_args(1)?;
                Control::Idle(arg(1)?)
            }
            "touch" => {
                max_args(1)?;
                Control::Touch(arg(1)?)
            }
            "str-unknown" => {
                max_args(1)?;
                Control::StrUnknown(arg(1)?)
            }
            "acct" => {
                max_args(2)?;
                let kind = match words.get(2).copied() {
                    Some("start") => AcctType::Start,
                    Some("interim") => AcctType::Interim,
                    Some("stop") => AcctType::Stop,
                    _ => return Err(format!("acct <who> start|interim|stop: {line}")),
                };
                Control::Acct(arg(1)?, kind)
            }
            "fail-ppr" | "drop-ppr" => {
                max_args(1)?;
                let glob = arg(1)?;
                let glob = (glob != "off").then_some(glob);
                if words[0] == "fail-ppr" {
                    Control::FailPpr(glob)
                } else {
                    Control::DropPpr(glob)
                }
            }
            "drop-srq" => {
                max_args(1)?;
                let n = arg(1)?;
                let n = match n.as_str() {
                    "off" => 0,
                    n => n
                        .parse::<u32>()
                        .map_err(|e| format!("drop-srq <count>|off: {n}: {e}"))?,
                };
                Control::DropSrq(n)
            }
            "srq" | "drop" | "dpr" | "list" | "quit" => {
                max_args(0)?;
                match words[0] {
                    "srq" => Control::Srq,
                    "drop" => Control::Drop,
                    "dpr" => Control::Dpr,
                    "list" => Control::List,
                    _ => Control::Quit,
                }
            }
            other => return Err(format!("unknown command {other:?}")),
        };
        Ok(Some(cmd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let p = |l: &str| Control::parse(l).unwrap().unwrap();
        assert_eq!(
            p("login alice@example.net 10.1.2.3 ge-1/0/0.5"),
            Control::Login {
                user: "alice@example.net".into(),
                ip: Some(Ipv4Addr::new(10, 1, 2, 3)),
                nas_port_id: Some("ge-1/0/0.5".into())
            }
        );
        assert_eq!(
            p("login bob"),
            Control::Login {
                user: "bob".into(),
                ip: None,
                nas_port_id: None
            }
        );
        assert_eq!(p("logout bob"), Control::Logout("bob".into()));
        assert_eq!(p("  idle a;1;2;3 "), Control::Idle("a;1;2;3".into()));
        assert_eq!(
            p("acct bob interim"),
            Control::Acct("bob".into(), AcctType::Interim)
        );
        assert_eq!(p("touch bob"), Control::Touch("bob".into()));
        assert_eq!(p("str-unknown a;1;2"), Control::StrUnknown("a;1;2".into()));
        assert_eq!(p("fail-ppr gold*"), Control::FailPpr(Some("gold*".into())));
        assert_eq!(p("fail-ppr off"), Control::FailPpr(None));
        assert_eq!(p("drop-ppr x?"), Control::DropPpr(Some("x?".into())));
        assert_eq!(p("drop-srq 2"), Control::DropSrq(2));
        assert_eq!(p("drop-srq off"), Control::DropSrq(0));
        assert_eq!(p("srq"), Control::Srq);
        assert_eq!(p("drop"), Control::Drop);
        assert_eq!(p("dpr"), Control::Dpr);
        assert_eq!(p("list"), Control::List);
        assert_eq!(p("quit"), Control::Quit);
        assert_eq!(Control::parse("  # comment").unwrap(), None);
        assert_eq!(Control::parse("").unwrap(), None);
    }

    #[test]
    fn rejects_bad_lines() {
        for bad in [
            "logon bob",
            "login",
            "login bob 10.0.0",
            "acct bob",
            "acct bob later",
            "logout",
            "list all",
            "login a 10.0.0.1 ge-0 extra",
            "drop-srq",
            "drop-srq -1",
            "drop-srq 1 2",
        ] {
            assert!(Control::parse(bad).is_err(), "{bad}");
        }
    }
}
