//! The pass_persist protocol parser reads what snmpd writes to the handler's stdin: it must
//! be total. Any bytes give requests (possibly `Invalid`) and then the end, never a panic
//! or an endless loop; a set value line gives a value or `None`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use subcast_snmp::passpersist::protocol::{Request, SetValue, parse_set_value, read_request};

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data);
    let mut n = 0usize;
    while let Some(req) = read_request(&mut input).expect("reading from memory cannot fail") {
        n += 1;
        // Every request consumes at least one line, so there are at most len + 1.
        assert!(n <= data.len() + 1);
        if let Request::Set(_, SetValue::Octets(b)) = &req {
            // Hex text has at least two characters per octet.
            assert!(b.len() <= data.len());
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = parse_set_value(&text);
});
