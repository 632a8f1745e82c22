//! Keeping echoed input short. A diagnostic quotes what the user wrote (a name, a value, a
//! pattern); input can be hostile or broken (a 5 MB name, a whole file pasted into a field), and
//! a message that prints it whole is unreadable and slow to render. Every text a [`Diagnostic`]
//! holds goes through [`tame`], so no constructor can forget it.
//!
//! [`Diagnostic`]: crate::Diagnostic

use std::borrow::Cow;

/// The longest quoted value a message keeps whole, in characters; the DNS-subdomain limit of
/// Kubernetes names (253) plus a little, so that every valid name is shown whole.
pub const MAX_QUOTED: usize = 256;
/// The longest text a message keeps, in characters, after its quoted values are cut.
pub const MAX_TEXT: usize = 2048;
/// How many characters of a cut value are kept.
const KEEP: usize = 64;

/// `value` itself when it is at most [`MAX_QUOTED`] characters, else its first characters, an
/// ellipsis and its length (`aaaa… (5000000 bytes)`).
pub fn excerpt(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(MAX_QUOTED) {
        None => Cow::Borrowed(value),
        Some(_) => Cow::Owned(cut(value)),
    }
}

fn cut(value: &str) -> String {
    let end = value
        .char_indices()
        .nth(KEEP)
        .map_or(value.len(), |(i, _)| i);
    format!("{}… ({} bytes)", &value[..end], value.len())
}

/// Cuts every quoted part (between backticks or double quotes) longer than [`MAX_QUOTED`]
/// characters, then the whole text at [`MAX_TEXT`] characters. Texts that need neither (all
/// of them, for valid input) are returned unchanged without a copy.
pub(crate) fn tame(text: String) -> String {
    if text.len() <= MAX_QUOTED {
        return text;
    }
    let mut out = String::with_capacity(MAX_TEXT.min(text.len()));
    let mut rest = text.as_str();
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest.as_bytes()[open];
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let close = rest.find(quote as char).unwrap_or(rest.len());
        out.push_str(&excerpt(&rest[..close]));
        rest = &rest[close..];
        if let Some(after) = rest.strip_prefix(quote as char) {
            out.push(quote as char);
            rest = after;
        }
    }
    out.push_str(rest);
    match out.char_indices().nth(MAX_TEXT) {
        Some((at, _)) => {
            out.truncate(at);
            out.push('…');
            out
        }
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_kept_and_long_ones_cut_with_their_length() {
        assert_eq!(excerpt("gpt-4o"), "gpt-4o");
        let name = "a".repeat(253);
        assert_eq!(excerpt(&name), name.as_str());
        let long = "é".repeat(5_000);
        let cut = excerpt(&long);
        assert!(cut.starts_with(&"é".repeat(64)), "{cut}");
        assert!(cut.ends_with("… (10000 bytes)"), "{cut}");
    }

    #[test]
    fn quoted_parts_are_cut_and_the_rest_kept() {
        let name = "x".repeat(1_000_000);
        let text = format!("Backend `default/{name}` is not defined in the input");
        let tamed = tame(text);
        assert!(tamed.starts_with("Backend `default/xxx"), "{tamed}");
        assert!(
            tamed.ends_with("… (1000008 bytes)` is not defined in the input"),
            "{tamed}"
        );
        assert!(tamed.len() < 200);
        let value = "y".repeat(300);
        let tamed = tame(format!(
            "invalid value: \"{value}\": in body should match '^a$'"
        ));
        assert!(
            tamed.ends_with("… (300 bytes)\": in body should match '^a$'"),
            "{tamed}"
        );
        // An unclosed quote is cut too.
        assert!(tame(format!("`{value}")).ends_with("(300 bytes)"));
    }

    #[test]
    fn unquoted_text_is_capped() {
        let tamed = tame("z ".repeat(10_000));
        assert_eq!(tamed.chars().count(), MAX_TEXT + 1);
        assert!(tamed.ends_with('…'));
        let fine = "a message of ordinary length with `quoted` parts".repeat(3);
        assert_eq!(tame(fine.clone()), fine);
    }
}
