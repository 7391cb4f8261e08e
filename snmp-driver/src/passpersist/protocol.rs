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
        skip_line(input)?;
    }
    let s = String::from_utf8_lossy(&buf);
    Ok(Some(s.trim_end_matches(['\n', '\r']).to_string()))
}

/// Skips the rest of an over-long line without holding it in memory, so the next read
/// starts on a fresh line.
fn skip_line<R: BufRead>(input: &mut R) -> std::io::Result<()> {
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                input.consume(n);
            }
        }
    }
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
        "octet" => parse_hex(unquote(rest)).map(SetValue::Octets),
        "" => None,
        other => Some(SetValue::Other(other.to_string())),
    }
}

/// Hex octets as snmpd writes them (`80 01`, also `8001` or `0x80 0x01`): whitespace
/// separated tokens of hex digit pairs, each with an optional `0x`.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        let tok = tok
            .strip_prefix("0x")
            .or_else(|| tok.strip_prefix("0X"))
            .unwrap_or(tok);
        if tok.is_empty() || tok.len() % 2 != 0 || !tok.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        for pair in tok.as_bytes().chunks(2) {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        }
    }
    Some(out)
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
    use proptest::prelude::*;
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
        // Sign characters are not hex digits (u8::from_str_radix would take "+1").
        assert_eq!(parse_set_value("octet \"+1\""), None);
        assert_eq!(parse_set_value("octet \"0x0x12\""), None);
        assert_eq!(
            parse_set_value("octet \"0x80 01\""),
            Some(SetValue::Octets(vec![0x80, 1]))
        );
        assert_eq!(
            parse_set_value("objectid .1.3"),
            Some(SetValue::Other("objectid".into()))
        );
    }

    #[test]
    fn an_over_long_line_is_cut_and_the_next_request_still_read() {
        let mut text = "get\n.1.3.".to_string();
        text.push_str(&"9".repeat(100_000));
        text.push_str("\nPING\n");
        let mut c = Cursor::new(text.as_bytes());
        assert!(matches!(
            read_request(&mut c).unwrap(),
            Some(Request::Invalid(_))
        ));
        assert_eq!(read_request(&mut c).unwrap(), Some(Request::Ping));
        assert_eq!(read_request(&mut c).unwrap(), None);
    }

    /// A request as snmpd writes it (pass_persist.c / pass_common.c).
    fn snmpd_text(req: &Request) -> String {
        match req {
            Request::Ping => "PING\n".into(),
            Request::Get(o) => format!("get\n{}\n", format_oid(o)),
            Request::GetNext(o) => format!("getnext\n{}\n", format_oid(o)),
            Request::Set(o, SetValue::Integer(n)) => {
                format!("set\n{}\ninteger {n}\n\n", format_oid(o))
            }
            Request::Set(o, SetValue::Octets(b)) => {
                let v = if b.is_empty() {
                    "string \"\"".to_string()
                } else if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
                    format!("string \"{}\"", String::from_utf8_lossy(b))
                } else {
                    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
                    format!("octet \"{}\"", hex.join(" "))
                };
                format!("set\n{}\n{v}\n\n", format_oid(o))
            }
            Request::Set(o, SetValue::Other(t)) => format!("set\n{}\n{t} \"x\"\n\n", format_oid(o)),
            Request::Invalid(t) => format!("{t}\n"),
        }
    }

    fn any_request() -> impl Strategy<Value = Request> {
        let oid = proptest::collection::vec(any::<u32>(), 1..20);
        prop_oneof![
            Just(Request::Ping),
            oid.clone().prop_map(Request::Get),
            oid.clone().prop_map(Request::GetNext),
            (oid.clone(), any::<i32>())
                .prop_map(|(o, n)| Request::Set(o, SetValue::Integer(i64::from(n)))),
            (oid, proptest::collection::vec(any::<u8>(), 0..600))
                .prop_map(|(o, b)| Request::Set(o, SetValue::Octets(b))),
        ]
    }

    proptest! {
        #[test]
        fn transcripts_parse_back(reqs in proptest::collection::vec(any_request(), 0..20)) {
            let text: String = reqs.iter().map(snmpd_text).collect();
            let mut c = Cursor::new(text.as_bytes());
            let mut got = Vec::new();
            while let Some(r) = read_request(&mut c).unwrap() {
                got.push(r);
            }
            prop_assert_eq!(got, reqs);
        }

        #[test]
        fn any_input_parses_without_panic_and_ends(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let mut c = Cursor::new(&bytes[..]);
            let mut n = 0;
            while let Some(_r) = read_request(&mut c).unwrap() {
                n += 1;
                // Every request consumes at least one line.
                prop_assert!(n <= bytes.len());
            }
        }

        #[test]
        fn set_values_never_panic(line in "\\PC{0,300}") {
            let _ = parse_set_value(&line);
        }

        #[test]
        fn hex_octets_roundtrip(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let hex: Vec<String> = b.iter().map(|x| format!("{x:02X}")).collect();
            let line = format!("octet \"{}\"", hex.join(" "));
            prop_assert_eq!(parse_set_value(&line), Some(SetValue::Octets(b)));
        }
    }
}
