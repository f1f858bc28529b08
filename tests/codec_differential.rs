//! `Envelope::scan` and `Envelope::read` against serde_json
//! (`docs/connection.md#payload-envelope`).
//!
//! `read` is the canonical fast path: on valid JSON in Discord's canonical
//! form it must give exactly what `scan` and serde_json give; on anything
//! else it must never panic nor return a span outside the text, and where it
//! differs from `scan` it must have taken the fast path (`check_read`).
//!
//! Generated envelopes (any key order, whitespace, escapes, unknown keys,
//! nested `d`) must scan exactly as serde_json reads them; truncated and
//! mutated ones, and a list of handwritten malformed inputs, must never
//! panic and must be rejected whenever serde_json says they are not JSON.
//! The oracle is `check_envelope` in `fuzz/checks.rs`, shared with the
//! fuzz target.
#![cfg(feature = "zlib")]

#[path = "../fuzz/checks.rs"]
mod checks;

use checks::check_envelope;
use discord_gateway_stream::fuzzing::{Envelope, ScanError};
use proptest::prelude::*;

/// JSON whitespace, mostly none (as Discord sends it).
fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![6 => Just(""), 1 => Just(" "), 1 => Just("\n  "), 1 => Just("\t"), 1 => Just("\r\n")]
}

/// One piece of string contents: plain text (ASCII and not), or an escape.
fn string_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z0-9 _.:/-]{0,12}",
        2 => "[é日本語😀ü€]{1,3}",
        1 => prop::sample::select(vec![r#"\""#, r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t"]).prop_map(str::to_owned),
        1 => any::<u16>()
            .prop_filter("not a surrogate", |unit| !(0xD800..=0xDFFF).contains(unit))
            .prop_map(|unit| format!("\\u{unit:04x}")),
        1 => (0xD800u16..0xDC00, 0xDC00u16..0xE000).prop_map(|(high, low)| format!("\\u{high:04X}\\u{low:04x}")),
    ]
}

/// A JSON string literal, quotes included.
fn json_string() -> impl Strategy<Value = String> {
    prop::collection::vec(string_piece(), 0..5).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

/// A JSON number: negatives, fractions, exponents, big values.
fn json_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (
            prop::bool::ANY,
            prop_oneof![Just("0".to_owned()), "[1-9][0-9]{0,20}"],
            prop::option::of("[0-9]{1,6}"),
            prop::option::of(("[eE]", "[+-]?", "[0-9]{1,3}")),
        )
            .prop_map(|(negative, int, frac, exp)| {
                let mut number = String::new();
                if negative {
                    number.push('-');
                }
                number.push_str(&int);
                if let Some(frac) = frac {
                    number.push('.');
                    number.push_str(&frac);
                }
                if let Some((e, sign, digits)) = exp {
                    number.push_str(&e);
                    number.push_str(&sign);
                    number.push_str(&digits);
                }
                number
            }),
    ]
}

/// Any JSON value of bounded depth, with random whitespace inside.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        json_number(),
        json_string(),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            (prop::collection::vec((ws(), inner.clone(), ws()), 0..6), ws()).prop_map(|(items, pad)| {
                let items: Vec<String> = items.into_iter().map(|(a, v, b)| format!("{a}{v}{b}")).collect();
                format!("[{pad}{}]", items.join(","))
            }),
            (prop::collection::vec((ws(), json_string(), ws(), ws(), inner), 0..6), ws()).prop_map(|(members, pad)| {
                let members: Vec<String> =
                    members.into_iter().map(|(a, k, b, c, v)| format!("{a}{k}{b}:{c}{v}")).collect();
                format!("{{{pad}{}}}", members.join(","))
            }),
        ]
    })
}

/// A key as written: plain, or with some characters as `\u00XX` escapes.
fn spelled_key(name: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::bool::weighted(0.2), name.len()).prop_map(move |escape| {
        let body: String = name
            .chars()
            .zip(escape)
            .map(|(c, escape)| if escape { format!("\\u{:04x}", c as u32) } else { c.to_string() })
            .collect();
        format!("\"{body}\"")
    })
}

/// A gateway envelope: `op` (almost always an unsigned integer), optional
/// `s`, `t`, `d`, unknown keys, in random order with random whitespace.
fn envelope() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        20 => prop_oneof![0u64..12, any::<u64>()].prop_map(|op| op.to_string()),
        1 => json_value(),
    ];
    let seq = prop::option::of(prop_oneof![Just("null".to_owned()), any::<u64>().prop_map(|s| s.to_string())]);
    let event =
        prop::option::of(prop_oneof![Just("null".to_owned()), Just("\"MESSAGE_CREATE\"".to_owned()), json_string(),]);
    let data = prop::option::of(json_value());
    let unknown = prop::collection::vec((json_string(), json_value()), 0..3);
    (spelled_key("op"), op, (spelled_key("s"), seq), (spelled_key("t"), event), (spelled_key("d"), data), unknown)
        .prop_flat_map(|(op_key, op, (s_key, seq), (t_key, event), (d_key, data), unknown)| {
            let mut members = vec![(op_key, op)];
            members.extend(seq.map(|seq| (s_key, seq)));
            members.extend(event.map(|event| (t_key, event)));
            members.extend(data.map(|data| (d_key, data)));
            members.extend(unknown);
            let count = members.len();
            (Just(members).prop_shuffle(), prop::collection::vec((ws(), ws(), ws(), ws()), count), ws(), ws())
        })
        .prop_map(|(members, pads, lead, trail)| {
            let members: Vec<String> = members
                .iter()
                .zip(&pads)
                .map(|((key, value), (a, b, c, d))| format!("{a}{key}{b}:{c}{value}{d}"))
                .collect();
            format!("{lead}{{{}}}{trail}", members.join(","))
        })
}

/// Bytes that make interesting corruptions of JSON.
fn nasty_byte() -> impl Strategy<Value = u8> {
    prop_oneof![prop::sample::select(b"{}[]:,\"\\0123456789-+.eEtfnlrsu \n\t\x01\x1f\x7fx".to_vec()), any::<u8>(),]
}

/// Every char boundary of `text` at or below `at`, rounded down.
fn floor_boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_envelopes_scan_exactly_as_serde_reads_them(text in envelope()) {
        let scanned = check_envelope(text.as_bytes()).expect("generated text is UTF-8");
        // Most generated envelopes are good ones: make sure they are accepted, not just consistent.
        let serde_ok = serde_json::from_str::<checks::Probe<'_>>(&text).is_ok();
        prop_assert_eq!(scanned.is_ok(), serde_ok, "{}", text);
    }

    #[test]
    fn truncated_envelopes_never_panic_and_are_rejected(text in envelope(), cut in any::<prop::sample::Index>()) {
        let end = floor_boundary(&text, cut.index(text.len().max(1)));
        let truncated = &text[..end];
        check_envelope(truncated.as_bytes());
        if end < text.trim_end().len() {
            prop_assert!(Envelope::scan(truncated).is_err(), "{:?}", truncated);
        }
    }

    #[test]
    fn mutated_envelopes_agree_with_serde(
        text in envelope(),
        at in any::<prop::sample::Index>(),
        byte in nasty_byte(),
        kind in 0..3u8,
    ) {
        let mut bytes = text.into_bytes();
        let at = at.index(bytes.len());
        match kind {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ => {
                bytes.remove(at);
            }
        }
        check_envelope(&bytes);
    }

    #[test]
    fn canonical_envelopes_read_exactly_as_serde_reads_them(
        event in prop_oneof![Just("null".to_owned()), Just("\"MESSAGE_CREATE\"".to_owned()), "\"[A-Z_é日]{0,24}\""],
        seq in prop_oneof![Just("null".to_owned()), any::<u64>().prop_map(|s| s.to_string())],
        op in prop_oneof![0u64..12, any::<u64>()],
        value in json_value(),
    ) {
        let text = format!(r#"{{"t":{event},"s":{seq},"op":{op},"d":{value}}}"#);
        let scanned = check_envelope(text.as_bytes()).expect("UTF-8").expect("valid");
        let form = checks::canonical_form(&text, &scanned);
        prop_assert_eq!(form.as_deref(), Some(text.as_str()));
        prop_assert_eq!(Envelope::read(&text), Ok(scanned));
    }

    #[test]
    fn canonical_envelopes_cut_or_mutated_never_escape_the_text(
        value in json_value(),
        at in any::<prop::sample::Index>(),
        byte in nasty_byte(),
        kind in 0..3u8,
    ) {
        let text = format!(r#"{{"t":"GUILD_CREATE","s":9,"op":0,"d":{value}}}"#);
        let mut bytes = text.into_bytes();
        let at = at.index(bytes.len());
        match kind {
            0 => bytes[at] = byte,
            1 => bytes.truncate(at),
            _ => {
                bytes.remove(at);
            }
        }
        check_envelope(&bytes);
    }

    #[test]
    fn arbitrary_values_as_d_agree_with_serde(value in json_value(), pad in ws()) {
        let text = format!(r#"{{"t":"X","s":1,"op":0,"d":{pad}{value}{pad}}}"#);
        let scanned = check_envelope(text.as_bytes()).expect("UTF-8");
        prop_assert!(scanned.is_ok(), "{}", text);
    }
}

#[test]
fn handwritten_malformed_inputs_are_rejected() {
    let deep_open = format!(r#"{{"op":0,"d":{}"#, "[".repeat(100_000));
    let deep_objects = format!(r#"{{"op":0,"d":{}"#, r#"{"a":"#.repeat(50_000));
    let cases: Vec<&str> = vec![
        "",
        "   ",
        "[]",
        "[0]",
        "[0,null,null,null]",
        "null",
        "\"op\"",
        "{",
        "}",
        "{\"op\":0}}",
        "{\"op\":0}{}",
        "{\"op\":0,}",
        "{,\"op\":0}",
        "{\"op\" 0}",
        "{\"op\"::0}",
        "{\"op\":0 \"d\":1}",
        "{op:0}",
        "{'op':0}",
        "{\"op\":-1}",
        "{\"op\":1.5}",
        "{\"op\":1e2}",
        "{\"op\":-0}",
        "{\"op\":01}",
        "{\"op\":18446744073709551616}",
        "{\"op\":99999999999999999999999999999}",
        "{\"op\":0,\"d\":\"unterminated}",
        "{\"op\":0,\"d\":\"bad \\x escape\"}",
        "{\"op\":0,\"d\":\"\\u12\"}",
        "{\"op\":0,\"d\":\"\\u12G4\"}",
        "{\"op\":0,\"d\":\"\\\"}",
        "{\"op\":0,\"d\":01}",
        "{\"op\":0,\"d\":-}",
        "{\"op\":0,\"d\":-a}",
        "{\"op\":0,\"d\":1.}",
        "{\"op\":0,\"d\":.5}",
        "{\"op\":0,\"d\":1e}",
        "{\"op\":0,\"d\":1e+}",
        "{\"op\":0,\"d\":1.e5}",
        "{\"op\":0,\"d\":+1}",
        "{\"op\":0,\"d\":0x10}",
        "{\"op\":0,\"d\":Infinity}",
        "{\"op\":0,\"d\":NaN}",
        "{\"op\":0,\"d\":[1,]}",
        "{\"op\":0,\"d\":[,1]}",
        "{\"op\":0,\"d\":[1 2]}",
        "{\"op\":0,\"d\":{\"a\":1,}}",
        "{\"op\":0,\"d\":{\"a\"}}",
        "{\"op\":0,\"d\":{\"a\" 1}}",
        "{\"op\":0,\"d\":{1:1}}",
        "{\"op\":0,\"d\":{\"a\":1]}",
        "{\"op\":0,\"d\":[1}",
        "{\"op\":0,\"d\":tru}",
        "{\"op\":0,\"d\":nul}",
        "{\"op\":0,\"d\":falsey}",
        "{\"op\":0,\"d\":True}",
        "{\"op\":0,\"d\":\"raw \u{1} control\"}",
        "{\"op\":0,\"d\":\"raw \n newline\"}",
        "{\"op\":0,\"d\":\"raw \t tab\"}",
        "{\"op\":0,\"d\":\u{a0}1}",
        "{\"op\":0,\"d\":1}\u{0}",
        "{\"op\":0,\"d\":1}\u{feff}",
        "\u{feff}{\"op\":0}",
        "{\"op\":0,\"d\":[\"a\" \"b\"]}",
        &deep_open,
        &deep_objects,
    ];
    for case in cases {
        let scanned = check_envelope(case.as_bytes()).expect("UTF-8");
        assert!(scanned.is_err(), "{:?} must be rejected", &case[..case.len().min(60)]);
    }
}

#[test]
fn handwritten_envelopes_scan_exactly_as_serde_reads_them() {
    let deep_but_allowed = format!(r#"{{"op":0,"d":{}1{}}}"#, "[".repeat(1023), "]".repeat(1023));
    let cases: Vec<&str> = vec![
        r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250,"_trace":["[\"gateway-prd\",{\"micros\":0.0}]"]}}"#,
        r#"{"op":11}"#,
        r#"{"t":null,"s":null,"op":11,"d":null}"#,
        r#"{"t":null,"s":null,"op":9,"d":false}"#,
        r#"{"t":null,"s":null,"op":7,"d":null}"#,
        r#"{"t":"READY","s":1,"op":0,"d":{"v":10,"session_id":"abc"}}"#,
        r#"{"d":{"a":[1,-2.5e-3,true,false,null,"x",{}]},"op":0,"t":"X","s":18446744073709551615}"#,
        r#"{"o\u0070":0,"\u0074":"A\u00e9\ud83d\ude00\n","\u0073":3,"\u0064":"\ud800 lone is valid JSON"}"#,
        r#"{"\u006fp":0,"t":"\/\\\"","x":{"op":1,"op":2},"op\u0000":5}"#,
        " \r\n\t{ \"op\" : 5 , \"d\" : [ ] } \n",
        r#"{"op":0,"d":"","t":""}"#,
        r#"{"op":0,"d":0}"#,
        r#"{"op":0,"d":-0.0E+00}"#,
        &deep_but_allowed,
    ];
    for case in cases {
        let scanned = check_envelope(case.as_bytes()).expect("UTF-8");
        assert!(scanned.is_ok(), "{:?} must scan: {scanned:?}", &case[..case.len().min(80)]);
    }
}

#[test]
fn envelope_errors_name_the_problem() {
    assert_eq!(Envelope::scan("[]"), Err(ScanError::NotAnObject));
    assert_eq!(Envelope::scan(r#"{"d":1}"#), Err(ScanError::MissingOp));
    assert_eq!(Envelope::scan(r#"{"op":1.5}"#), Err(ScanError::OpNotUnsigned));
    assert_eq!(Envelope::scan(r#"{"op":0,"s":-1}"#), Err(ScanError::SeqNotUnsigned));
    assert_eq!(Envelope::scan(r#"{"op":0,"t":[]}"#), Err(ScanError::EventNotString));
    assert_eq!(Envelope::scan(r#"{"op":0,"op":0}"#), Err(ScanError::DuplicateKey { key: "op", at: 8 }));
    assert_eq!(Envelope::scan(r#"{"op":0} x"#), Err(ScanError::TrailingCharacters { at: 9 }));
    assert_eq!(Envelope::scan(r#"{"op":0,"d":"#), Err(ScanError::Truncated));
    assert_eq!(Envelope::scan(r#"{"op":0,"d":"\q"}"#), Err(ScanError::InvalidEscape { at: 13 }));
    assert_eq!(Envelope::scan("{\"op\":0,\"d\":\"\u{1}\"}"), Err(ScanError::ControlCharacter { at: 13 }));
    assert_eq!(Envelope::scan(r#"{"op":0,"d":01}"#), Err(ScanError::UnexpectedByte { at: 13 }));
    assert_eq!(Envelope::scan(r#"{"op":0,"d":1.}"#), Err(ScanError::InvalidNumber { at: 14 }));
}

#[test]
fn the_fast_path_reads_canonical_payloads_and_leaves_the_rest_to_the_scan() {
    // Canonical: read from the prefix; `d` is the rest of the object.
    let text = r#"{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"content":"hi"}}"#;
    let read = Envelope::read(text).expect("canonical");
    assert_eq!((read.op, read.seq), (0, Some(42)));
    assert_eq!(&text[read.data.clone().expect("d")], r#"{"content":"hi"}"#);
    assert_eq!(Envelope::read(text), Envelope::scan(text));
    // Heartbeat ACK, Hello, op 9: short `d`s are checked whole.
    for text in [
        r#"{"t":null,"s":null,"op":11,"d":null}"#,
        r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}"#,
        r#"{"t":null,"s":null,"op":9,"d":false}"#,
        r#"{"t":null,"s":null,"op":1,"d":251}"#,
    ] {
        assert_eq!(Envelope::read(text), Envelope::scan(text), "{text}");
    }
    // Not canonical: other orders, whitespace, escapes in `t`, leading zeros,
    // keys after `d`, a `d` whose last byte cannot close it: the full scan decides.
    for text in [
        r#"{"op":0,"t":"X","s":1,"d":{}}"#,
        r#"{"t": "X","s":1,"op":0,"d":{}}"#,
        r#"{"t":"X","s":1,"op":0,"d":{}}"#,
        r#"{"t":"X","s":01,"op":0,"d":{}}"#,
        r#"{"t":"X","s":1,"op":0,"d":{},"x":1}"#,
        r#"{"t":"X","s":1,"op":0,"d":{} }"#,
        r#"{"t":"X","s":1,"op":0,"d":nul}"#,
        r#"{"t":"X","s":1,"op":0,"d":1,"x":2}"#,
        r#"{"t":"X","s":1,"op":0}"#,
        r#"{"t":"X","s":1.5,"op":0,"d":{}}"#,
        // Found by the envelope fuzz target: whitespace before a scalar `d`
        // was taken into its span.
        "{\"t\":\"MES_TE\",\"s\":21,\"op\":0,\"d\":\r0}",
        "{\"t\":\"READY\",\"s\":1,\"op\":0,\"d\":\t\t{\"a\":1}}",
        "{\"t\":\"X\",\"s\":1,\"op\":0,\"d\": null}",
    ] {
        assert_eq!(Envelope::read(text), Envelope::scan(text), "{text}");
    }
    // The documented limit: `d` of a canonical-looking payload is not
    // validated (the application's deserializer does that, or
    // `Config::validate_payloads(true)` has the scan check it).
    let invalid = r#"{"t":"X","s":1,"op":0,"d":{"a":}}"#;
    assert!(Envelope::scan(invalid).is_err());
    let read = Envelope::read(invalid).expect("fast path");
    assert_eq!(&invalid[read.data.expect("d")], r#"{"a":}"#);
    // And the fast path assumes `d` is the last key: keys after an object or
    // array `d` become part of it (Discord never sends any; the core reads
    // its own payloads and READY with the full scan).
    let after = r#"{"t":"X","s":1,"op":0,"d":{},"x":{}}"#;
    assert_eq!(&after[Envelope::scan(after).expect("valid").data.expect("d")], "{}");
    assert_eq!(&after[Envelope::read(after).expect("fast path").data.expect("d")], r#"{},"x":{}"#);
    check_envelope(after.as_bytes());
}
