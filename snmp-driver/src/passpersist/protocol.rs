//! net-snmp `pass_persist` wire format (snmpd.conf(5)), line based over stdin/stdout.
//!
//! snmpd sends `PING` before every command (answer `PONG`), then one of
//! `get\nOID\n`, `getnext\nOID\n` or `set\nOID\nTYPE VALUE\n` (snmpd 5.9 follows a set with
//! an empty line, which is skipped). Answers are `OID\nTYPE\nVALUE\n`, `NONE\n`, `DONE\n`, or
//! an error word such as `not-writable` / `wrong-type` / `wrong-value`.
//!
//! Observed from snmpd 5.9.3: an OCTET STRING set arrives as `string "text"` when every octet
//! is printable and as `octet "80 01"` (hex) otherwise.

use crate::mib::{format_oid, parse_oid};
use std::io::{BufRead, Read};

/// One command from snmpd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `PING`
    Ping,
    /// `get` of one OID.
    Get(Vec<u32>),
    /// `getnext` of one OID.
    GetNext(Vec<u32>),
    /// `set` of one OID.
    Set(Vec<u32>, SetValue),
    /// A command or argument this program does not understand (answered `NONE`).
    Invalid(String),
}

/// The typed value of a `set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    /// `integer N` (also gauge, counter, timeticks: all numbers).
    Integer(i64),
    /// `string "..."` or `octet "XX XX"`.
    Octets(Vec<u8>),
    /// Any other type (objectid, ipaddress...); carried as its type word.
    Other(String),
}

/// A value in a `get`/`getnext` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// INTEGER / Integer32.
    Integer(i64),
    /// OCTET STRING, sent as hex.
    Octets(Vec<u8>),
}

/// One answer to snmpd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `PONG`
    Pong,
    /// An OID and its value.
    Value(Vec<u32>, Value),
    /// `NONE`: no such object (get) or end of our subtree (getnext).
    None,
    /// `DONE`: the set was applied.
    Done,
    /// A set error word understood by snmpd (`not-writable`, `wrong-type`, `wrong-value`,
    /// `inconsistent-value`, `wrong-length`).
    SetError(&'static str),
}

impl Response {
    /// The exact text written to stdout.
    pub fn render(&self) -> String {
        match self {
            Response::Pong => "PONG\n".into(),
            Response::None => "NONE\n".into(),
            Response::Done => "DONE\n".into(),
            Response::SetError(e) => format!("{e}\n"),
            Response::Value(oid, Value::Integer(n)) => {
                format!("{}\ninteger\n{n}\n", format_oid(oid))
            }
            Response::Value(oid, Value::Octets(b)) => {
                let hex: Vec<String> = b.iter().map(|x| format!("{x:02X}")).collect();
                format!("{}\noctet\n{}\n", format_oid(oid), hex.join(" "))
            }
        }
    }
}

/// Reads the next request; `Ok(None)` at end of input (snmpd closed the pipe).
pub fn read_request<R: BufRead>(input: &mut R) -> std::io::Result<Option<Request>> {
    let Some(cmd) = next_nonempty_line(input)? else {
        return Ok(None);
    };
    let req = match cmd.as_str() {
        "PING" => Request::Ping,
        "get" | "getnext" | "set" => {
            let Some(oid_line) = next_line(input)? else {
                return Ok(None);
            };
            let Some(oid) = parse_oid(&oid_line) else {
                return Ok(Some(Request::Invalid(oid_line)));
            };
            match cmd.as_str() {
                "get" => Request::Get(oid),
                "getnext" => Request::GetNext(oid),
                _ => {
                    let Some(val_line) = next_line(input)? else {
                        return Ok(None);
                    };
                    match parse_set_value(&val_line) {
                        Some(v) => Request::Set(oid, v),
                        None => Request::Invalid(val_line),
                    }
                }
            }
        }
        _ => Request::Invalid(cmd),
    };
    Ok(Some(req))
}

/// Lines longer than this are cut (a PortList for 4096 ports is ~1.5 KB of hex).
const MAX_LINE: u64 = 16 * 1024;

fn next_line<R: BufRead>(input: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = input.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && n as u64 == MAX_LINE {
        // Skip the rest of an over-long line so the next read starts on a fresh line.
        let mut sink = Vec::new();
        input.read_until(b'\n', &mut sink)?;
    }
    let s = String::from_utf8_lossy(&buf);
    Ok(Some(s.trim_end_matches(['\n', '\r']).to_string()))
}

fn next_nonempty_line<R: BufRead>(input: &mut R) -> std::io::Result<Option<String>> {
    loop {
        match next_line(input)? {
            None => return Ok(None),
            Some(l) if l.trim().is_empty() => continue,
            Some(l) => return Ok(Some(l.trim().to_string())),
        }
    }
}

/// Parses `TYPE VALUE` of a set line.
pub fn parse_set_value(line: &str) -> Option<SetValue> {
    let line = line.trim();
    let (ty, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match ty.to_ascii_lowercase().as_str() {
        "integer" | "gauge" | "counter" | "timeticks" | "unsigned" => {
            rest.parse().ok().map(SetValue::Integer)
        }
        "string" => Some(SetValue::Octets(unquote(rest).as_bytes().to_vec())),
        "octet" => {
            let hex = unquote(rest);
            let mut out = Vec::new();
            for tok in hex.split_whitespace() {
                let tok = tok.trim_start_matches("0x").trim_start_matches("0X");
                if tok.len() % 2 != 0 {
                    return None;
                }
                for i in (0..tok.len()).step_by(2) {
                    out.push(u8::from_str_radix(tok.get(i..i + 2)?, 16).ok()?);
                }
            }
            Some(SetValue::Octets(out))
        }
        "" => None,
        other => Some(SetValue::Other(other.to_string())),
    }
}

fn unquote(s: &str) -> &str {
    match (s.find('"'), s.rfind('"')) {
        (Some(a), Some(b)) if b > a => &s[a + 1..b],
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn parses_snmpd_transcript() {
        let text = "PING\nget\n.1.3.6.1\nset\n.1.3.6.1.5\noctet \"80 01\"\n\nset\n.1.3\nstring \"@@\"\n\nset\n.1.3\ninteger 3\n\ngetnext\n.1\nbogus\n";
        let mut c = Cursor::new(text.as_bytes());
        let mut got = Vec::new();
        while let Some(r) = read_request(&mut c).unwrap() {
            got.push(r);
        }
        assert_eq!(
            got,
            vec![
                Request::Ping,
                Request::Get(vec![1, 3, 6, 1]),
                Request::Set(vec![1, 3, 6, 1, 5], SetValue::Octets(vec![0x80, 1])),
                Request::Set(vec![1, 3], SetValue::Octets(b"@@".to_vec())),
                Request::Set(vec![1, 3], SetValue::Integer(3)),
                Request::GetNext(vec![1]),
                Request::Invalid("bogus".into()),
            ]
        );
    }

    #[test]
    fn renders_values() {
        assert_eq!(
            Response::Value(vec![1, 3], Value::Octets(vec![0x80, 0])).render(),
            ".1.3\noctet\n80 00\n"
        );
        assert_eq!(
            Response::Value(vec![1], Value::Integer(-2)).render(),
            ".1\ninteger\n-2\n"
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        assert_eq!(parse_set_value("integer x"), None);
        assert_eq!(parse_set_value("octet \"8\""), None);
        assert_eq!(
            parse_set_value("objectid .1.3"),
            Some(SetValue::Other("objectid".into()))
        );
    }
}
