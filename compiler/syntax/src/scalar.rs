//! Scalars: the value of a scalar from its text, style and tag, by the YAML 1.2 core schema
//! (the rules are listed in `tree`'s module doc, with the rest of what the reader decides).

use crate::yaml::Value;
use serde_saphyr::granit_parser::{ScalarStyle, Tag};
use std::borrow::Cow;

/// The value of a scalar by its style, tag and text (the YAML 1.2 core schema).
pub(crate) fn resolve(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
) -> Result<Value, String> {
    let core = tag
        .filter(|t| t.handle() == "tag:yaml.org,2002:")
        .map(|t| t.suffix());
    // The non-specific tag `!`: a string, whatever it looks like.
    let local = tag.is_some_and(|t| t.handle().is_empty() && t.suffix() == "!");
    match core {
        Some("str") => return Ok(Value::String(owned(text))),
        Some("null") => return Ok(Value::Null),
        Some(suffix @ ("bool" | "int" | "float")) => {
            return match typed(&text, suffix) {
                Some(Value::Float(f)) if !f.is_finite() => Err(non_finite(&text)),
                Some(value) => Ok(value),
                None => Err(format!(
                    "`{}` is not a valid value for the tag !!{suffix}",
                    short(&text)
                )),
            };
        }
        _ => {}
    }
    if style != ScalarStyle::Plain || local {
        return Ok(Value::String(owned(text)));
    }
    match plain(&text) {
        Some(Value::Float(f)) if !f.is_finite() => Err(non_finite(&text)),
        Some(value) => Ok(value),
        None => Ok(Value::String(owned(text))),
    }
}

/// `.inf` and `.nan` are YAML numbers, but no API server takes them (JSON has neither).
fn non_finite(text: &str) -> String {
    format!(
        "`{text}` is not a number Kubernetes accepts (JSON has no infinity or NaN); quote it if it is text"
    )
}

/// A plain scalar's value when it is not a string.
fn plain(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Some(Value::Null),
        "true" | "True" | "TRUE" => Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => Some(Value::Bool(false)),
        _ => number(text),
    }
}

fn typed(text: &str, suffix: &str) -> Option<Value> {
    match (suffix, plain(text)?) {
        ("bool", v @ Value::Bool(_)) => Some(v),
        ("int", v @ Value::Int(_)) => Some(v),
        ("float", Value::Int(i)) => Some(Value::Float(i as f64)),
        ("float", v @ Value::Float(_)) => Some(v),
        _ => None,
    }
}

/// Core-schema integers and floats.
fn number(text: &str) -> Option<Value> {
    let first = *text.as_bytes().first()?;
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return radix(hex, 16);
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return radix(octal, 8);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        // Past i64: out of every bound our schemas have; kept as a number.
        return Some(text.parse::<i64>().map_or_else(
            |_| Value::Float(text.parse().unwrap_or(f64::NAN)),
            Value::Int,
        ));
    }
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            let inf = if text.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            return Some(Value::Float(inf));
        }
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == text.len() => {
            return Some(Value::Float(f64::NAN));
        }
        _ => {}
    }
    is_float(unsigned)
        .then(|| text.parse::<f64>().ok())
        .flatten()
        .map(Value::Float)
}

fn radix(digits: &str, radix: u32) -> Option<Value> {
    if digits.is_empty() {
        return None;
    }
    match i64::from_str_radix(digits, radix) {
        Ok(i) => Some(Value::Int(i)),
        Err(_) => u64::from_str_radix(digits, radix)
            .ok()
            .map(|u| Value::Float(u as f64)),
    }
}

/// `( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

fn short(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(40) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}

/// `250000` as `250,000`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The text of a scalar in a buffer of its size.
pub(crate) fn owned(text: Cow<'_, str>) -> String {
    match text {
        Cow::Borrowed(text) => text.to_owned(),
        Cow::Owned(mut text) => {
            text.shrink_to_fit();
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::{file, value};
    use crate::tree::{Problem, document};

    #[test]
    fn plain_scalars_resolve_by_the_core_schema() {
        let cases = [
            ("v: 80", Value::Int(80)),
            ("v: -3", Value::Int(-3)),
            ("v: +7", Value::Int(7)),
            ("v: 007", Value::Int(7)),
            ("v: 0x1F", Value::Int(31)),
            ("v: 0o17", Value::Int(15)),
            ("v: 1.5", Value::Float(1.5)),
            ("v: .5", Value::Float(0.5)),
            ("v: 1e3", Value::Float(1000.0)),
            ("v: 99999999999999999999", Value::Float(1e20)),
            ("v: true", Value::Bool(true)),
            ("v: FALSE", Value::Bool(false)),
            ("v: yes", Value::String("yes".into())),
            ("v: on", Value::String("on".into())),
            ("v: ~", Value::Null),
            ("v:", Value::Null),
            ("v: \"80\"", Value::String("80".into())),
            ("v: 'null'", Value::String("null".into())),
            ("v: !!str 80", Value::String("80".into())),
            ("v: !!float 1", Value::Float(1.0)),
            ("v: 1.2.3", Value::String("1.2.3".into())),
            ("v: 60s", Value::String("60s".into())),
            ("v: 0x", Value::String("0x".into())),
            ("v: 1_000", Value::String("1_000".into())),
            ("v: ! 12", Value::String("12".into())),
            ("v: |\n  a\n  b\n", Value::String("a\nb\n".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(value(text), expected, "{text}");
        }
        for text in ["v: .nan", "v: -.inf", "v: !!float .inf"] {
            let refused = document(file(), 0, text).expect_err(text);
            assert!(
                matches!(refused.what, Problem::Unsupported(m) if m.contains("JSON")),
                "{text}"
            );
        }
        let wrong = document(file(), 0, "v: !!int abc").expect_err("a wrong tag");
        assert!(matches!(wrong.what, Problem::Unsupported(m) if m.contains("!!int")));
    }
}
