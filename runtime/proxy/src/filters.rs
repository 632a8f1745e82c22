//! Gateway API filters of a plain HTTPRoute rule, as the compiled table carries them:
//! `RequestHeaderModifier` and `ResponseHeaderModifier` (set replaces, add appends, remove
//! removes, in that order), `URLRewrite` (the `Host` sent upstream, the path replaced whole or
//! its matched prefix replaced), and `RequestRedirect` (answered here, without a backend: what
//! the filter does not give is the request's own, and a changed scheme drops the request's
//! port). The compiler refuses the filters aigw does not apply, so none is dropped here.

use aigw_table::{HeaderEdits, PathRewrite, Redirect};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// Edits `headers` as a header filter says.
pub fn edit(headers: &mut HeaderMap, edits: &HeaderEdits) {
    for (name, value) in &edits.set {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    for (name, value) in &edits.add {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.append(name, value);
        }
    }
    for name in &edits.remove {
        headers.remove(name.as_str());
    }
}

/// The path a rewrite gives `path` (the query is the caller's to keep).
pub fn rewrite_path(rewrite: &PathRewrite, path: &str) -> String {
    if let Some(full) = &rewrite.full {
        return full.clone();
    }
    let Some(replacement) = &rewrite.prefix else {
        return path.to_owned();
    };
    // The longest of the rule's prefixes that matches on a segment boundary.
    let matched = rewrite
        .prefixes
        .iter()
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| path == *p || path.starts_with(&format!("{p}/")) || p.is_empty())
        .max_by_key(|p| p.len());
    let Some(prefix) = matched else {
        return path.to_owned();
    };
    let rest = &path[prefix.len()..];
    let joined = match (replacement.ends_with('/'), rest.starts_with('/')) {
        (true, true) => format!("{replacement}{}", &rest[1..]),
        (false, false) if !rest.is_empty() => format!("{replacement}/{rest}"),
        _ => format!("{replacement}{rest}"),
    };
    if joined.is_empty() {
        "/".to_owned()
    } else {
        joined
    }
}

/// The redirect answer for a request to `host` (its `Host`) at `path` (with its query), that
/// came over `scheme` to a listener on `listener_port`.
pub fn redirect(
    redirect: &Redirect,
    (scheme, listener_port): (&str, u16),
    host: &str,
    path_and_query: &str,
) -> http::Response<crate::body::Body> {
    let to_scheme = redirect.scheme.as_deref().unwrap_or(scheme);
    let to_host = redirect.hostname.as_deref().unwrap_or(host_name(host));
    // Gateway API: the filter's port; else the well-known port of the filter's scheme when it
    // gives one; else the listener's port.
    let to_port = redirect
        .port
        .or_else(|| redirect.scheme.is_none().then_some(listener_port));
    let default_port = if to_scheme == "https" { 443 } else { 80 };
    let authority = match to_port.filter(|p| *p != default_port) {
        Some(port) => format!("{to_host}:{port}"),
        None => to_host.to_owned(),
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let path = redirect
        .path
        .as_ref()
        .map_or_else(|| path.to_owned(), |rewrite| rewrite_path(rewrite, path));
    let location = match query {
        Some(query) => format!("{to_scheme}://{authority}{path}?{query}"),
        None => format!("{to_scheme}://{authority}{path}"),
    };
    let mut response = http::Response::new(crate::body::Body::full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::from_u16(redirect.status).unwrap_or(StatusCode::FOUND);
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}

/// The host name of a `Host` (brackets of an IPv6 literal kept, for the `Location`).
fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !host.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(prefixes: &[&str], replacement: &str) -> PathRewrite {
        PathRewrite {
            full: None,
            prefix: Some(replacement.into()),
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn prefixes_are_replaced_on_segment_boundaries() {
        let rewrite = prefix(&["/foo"], "/bar");
        assert_eq!(rewrite_path(&rewrite, "/foo/x"), "/bar/x");
        assert_eq!(rewrite_path(&rewrite, "/foo"), "/bar");
        assert_eq!(
            rewrite_path(&rewrite, "/foobar"),
            "/foobar",
            "not a segment boundary"
        );
        assert_eq!(rewrite_path(&prefix(&["/foo/"], "/"), "/foo/x"), "/x");
        assert_eq!(rewrite_path(&prefix(&["/foo"], "/"), "/foo"), "/");
        assert_eq!(
            rewrite_path(&prefix(&["/", "/api"], "/v2"), "/api/x"),
            "/v2/x",
            "the longest wins"
        );
        let full = PathRewrite {
            full: Some("/fixed".into()),
            ..PathRewrite::default()
        };
        assert_eq!(rewrite_path(&full, "/anything?"), "/fixed");
    }

    #[test]
    fn headers_are_set_added_and_removed_in_that_order() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("old"));
        headers.insert("x-gone", HeaderValue::from_static("1"));
        edit(
            &mut headers,
            &HeaderEdits {
                set: vec![("x-a".into(), "new".into())],
                add: vec![("x-a".into(), "more".into())],
                remove: vec!["x-gone".into()],
            },
        );
        let a: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["new", "more"]);
        assert!(headers.get("x-gone").is_none());
    }

    #[test]
    fn redirects_keep_what_they_do_not_change() {
        let to_https = Redirect {
            scheme: Some("https".into()),
            status: 301,
            ..Redirect::default()
        };
        let response = redirect(&to_https, ("http", 8080), "example.com:8080", "/a?b=1");
        assert_eq!(response.status(), 301);
        assert_eq!(
            response.headers()[http::header::LOCATION],
            "https://example.com/a?b=1"
        );
        let moved = Redirect {
            hostname: Some("new.example.com".into()),
            path: Some(PathRewrite {
                full: Some("/landing".into()),
                ..PathRewrite::default()
            }),
            status: 302,
            ..Redirect::default()
        };
        let response = redirect(&moved, ("http", 8080), "old.example.com", "/x");
        assert_eq!(
            response.headers()[http::header::LOCATION],
            "http://new.example.com:8080/landing"
        );
    }
}
